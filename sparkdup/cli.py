"""The `sparkdup` command: one subcommand per stage, each the same as its spark-submit job."""
from __future__ import annotations

import argparse
import importlib
import sys

from sparkdup.stage import add_common_arguments, execute

STAGES = ["run", "ingest", "embed", "neighbors", "analyze", "report", "export", "search"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparkdup", description="Find what is wrong with an image dataset, on Spark.")
    sub = parser.add_subparsers(dest="stage", required=True)
    for name in STAGES:
        job = importlib.import_module(f"sparkdup.jobs.{name}")
        p = sub.add_parser(name, help=(job.__doc__ or "").split("\n")[0], description=job.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        job.add_arguments(p)
        add_common_arguments(p)
    args = parser.parse_args(argv)
    return execute(importlib.import_module(f"sparkdup.jobs.{args.stage}"), args)


if __name__ == "__main__":
    sys.exit(main())

"""What every stage's command line shares: options, settings, session, logging, exit codes.

A job module defines ``add_arguments(parser)`` and ``run(spark, cfg, args, run_id)``;
``main_for(job)`` turns it into a command usable both as ``sparkdup <stage>`` and as
``spark-submit jobs/<stage>.py``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from sparkdup import logs
from sparkdup.config import PROFILES, Settings, load_config
from sparkdup.errors import ConfigError, UserError
from sparkdup.settings_schema import SCHEMA
from sparkdup.tables import RESULT_TABLES, new_run_id, register_tables

log = logging.getLogger("sparkdup")


# Command-line flags that set one setting each: the flag is the setting's last name part.
FLAG_SETTINGS = {
    "--format": "output.format",
    "--database": "output.database",
    "--layout": "ingest.layout",
    "--model": "embed.model",
    "--batch-size": "embed.batch_size",
    "--backend": "neighbors.backend",
    "--k": "neighbors.k",
    "--duplicate-similarity": "analyze.duplicate_similarity",
    "--glob": "ingest.glob",
}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_setting_flags(parser: argparse.ArgumentParser, *flags: str) -> None:
    """Add flags that each set one setting (FLAG_SETTINGS); their help names the setting and
    what it allows. Values are checked with the other settings, before any work."""
    for flag in flags:
        dotted = FLAG_SETTINGS[flag]
        tp, rule = SCHEMA[dotted]
        if tp is bool:  # a switch: present = true
            parser.add_argument(flag, dest=_dest(flag), action="store_const", const=True, help=f"sets {dotted} to true")
            continue
        allowed = f"; {rule.describe()}" if rule.describe() and not rule.pattern else ""
        parser.add_argument(flag, dest=_dest(flag), metavar=dotted.rsplit(".", 1)[1].upper(),
                            help=f"sets {dotted}{allowed}")


def flag_values(args: argparse.Namespace) -> dict:
    """{dotted setting: value} for every setting flag the user gave (None = not given)."""
    values = {}
    for flag, dotted in FLAG_SETTINGS.items():
        value = getattr(args, _dest(flag), None)
        if value is None:
            continue
        tp = SCHEMA[dotted][0]
        if isinstance(value, str) and tp in (int, float):
            try:
                value = tp(value)
            except ValueError:
                raise ConfigError(f"{flag} (setting '{dotted}') must be {'an integer' if tp is int else 'a number'}") \
                    from None
        values[dotted] = value
    return values


def add_append_flag(parser: argparse.ArgumentParser) -> None:
    """--append (once, though `run` gathers the flags of several stages): bring an existing
    Delta output up to date, reading and embedding only new or changed files
    (sparkdup.append)."""
    if "--append" in parser._option_string_actions:  # noqa: SLF001
        return
    parser.add_argument("--append", action="store_true",
                        help="update an existing output: only new or changed files are read, embedded and "
                             "queried; one Delta MERGE per table (Delta output only)")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="folder (any Hadoop URI) holding the result tables")
    add_setting_flags(parser, "--format")
    parser.add_argument("--profile", help="settings profile from conf/: " + ", ".join(PROFILES))
    parser.add_argument("--conf", action="append", default=[], metavar="FILE", help="YAML settings file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set ingest.flags.blurry_max=20")
    parser.add_argument("--run-id", help="identifier stored with every row (default: generated)")
    add_setting_flags(parser, "--database")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings, errors and the final findings (no progress)")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="text",
                        help="text (default) or json: one JSON object per log line, for cluster logs")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The checked settings of one command line: defaults, --profile, --conf, --set, flags."""
    return load_config(getattr(args, "profile", None), getattr(args, "conf", None) or (),
                       getattr(args, "set", None) or (), flag_values(args))


def execute(job, args: argparse.Namespace) -> int:
    """Run one stage; user-fixable errors become one clear line and exit code 2."""
    from sparkdup.session import get_spark

    logs.setup_logging(quiet=getattr(args, "quiet", False), fmt=getattr(args, "log_format", "text"))
    try:
        cfg = settings_from_args(args)
        if hasattr(job, "before_work"):  # input/output mistakes: one line before Spark starts
            job.before_work(cfg, args)
        spark = get_spark(cfg)
        run_job(job, spark, cfg, args, args.run_id or new_run_id())
        return 0
    except UserError as exc:
        print(f"sparkdup: error: {exc}", file=sys.stderr)
        return 2


def run_job(job, spark, cfg: Settings, args: argparse.Namespace, run_id: str) -> dict:
    """Run a stage (recorded in `runs`) or the pipeline (which records each of its stages).
    The output's lock (taken by ingest's preflight) is given back when it ends, so a
    notebook that keeps its process can hand the output to another run."""
    from sparkdup.preflight import release_output

    try:
        if getattr(job, "PIPELINE", None):
            return job.run(spark, cfg, args, run_id)
        return run_stage(job, spark, cfg, args, run_id)
    finally:
        release_output(args.output)


def table_locations(job, args: argparse.Namespace) -> dict[str, list[str]]:
    """{folder: [tables]} to register after a stage: the result tables under --output, and
    whatever the job writes elsewhere (export's `curated` under --to)."""
    where = {args.output: list(RESULT_TABLES)}
    for location, names in getattr(job, "tables_elsewhere", lambda a: {})(args).items():
        where.setdefault(location, []).extend(names)
    return where


def stage_name(job) -> str:
    """The stage a job module implements, also when spark-submit runs it as __main__."""
    return os.path.splitext(os.path.basename(job.__file__))[0]


def run_stage(job, spark, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    """Run one stage's job and append its row to the `runs` table (a READ_ONLY job, such
    as search, changes nothing, so it records nothing)."""
    from sparkdup.runs import record_run

    stage = stage_name(job)
    logs.set_stage(stage)
    if getattr(job, "READ_ONLY", False):
        return job.run(spark, cfg, args, run_id) or {}
    started = time.time()
    counts = job.run(spark, cfg, args, run_id) or {}
    seconds = time.time() - started
    record_run(spark, args.output, cfg["output"]["format"], run_id, stage, started, seconds, counts, cfg)
    if cfg["output"]["database"]:
        for location, names in table_locations(job, args).items():
            register_tables(spark, cfg["output"]["database"], location, names, cfg["output"]["format"])
    log.info("%s finished in %.1f s (run %s)", stage, seconds, run_id)
    return counts


def main_for(job, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"sparkdup {stage_name(job)}", description=job.__doc__)
    job.add_arguments(parser)
    add_common_arguments(parser)
    return execute(job, parser.parse_args(argv))

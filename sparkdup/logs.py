"""How sparkdup talks: readable lines on a terminal, or one JSON object per line for cluster logs.

``--quiet`` keeps warnings, errors and the final findings table; ``--log-format json`` makes
every message (and every progress report, with its numbers as fields) a JSON object on
stderr, so log pipelines (CloudWatch, Databricks log delivery, Loki) can filter by ``stage``
and ``level`` without parsing text.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

FORMATS = ("text", "json")
_current_stage = {"name": None}


def set_stage(name: str | None) -> None:
    """The stage that log records are attributed to (``stage`` field in JSON)."""
    _current_stage["name"] = name


class JsonLines(logging.Formatter):
    """One JSON object per record: ts, level, stage, message, and any progress fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "stage": _current_stage["name"],
            "message": record.getMessage(),
        }
        for key in ("progress", "summary"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(quiet: bool = False, fmt: str = "text") -> None:
    """(Re)configure the ``sparkdup`` logger; safe to call more than once."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {fmt!r}")
    logger = logging.getLogger("sparkdup")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonLines())
        handler.json_lines = True  # progress.py: no terminal status line in JSON mode
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s sparkdup %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    # Records still propagate: nothing in sparkdup configures the root logger, and hosts
    # that do (notebooks, pytest's log capture) keep seeing sparkdup's records.

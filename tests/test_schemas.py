"""The table specs in code (sparkdup/schemas.py) agree with docs/schema.md, and writers hold to them."""
from __future__ import annotations

import os
import re

import pytest

from sparkdup.schemas import TABLES, SchemaMismatch, conform

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "schema.md")


def documented_tables() -> dict[str, tuple[dict[str, str], bool]]:
    """{table: ({column: type}, passes extra columns)} from docs/schema.md's tables.

    A row may name several columns ("width, height"); an empty type means "the type of the
    column of that name in `images`" (for copied columns; `_a`/`_b` sides included)."""
    text = open(DOC, encoding="utf-8").read()
    tables: dict[str, tuple[dict[str, str], bool]] = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        named = re.match(r"([a-z_]+) ", block)
        if named is None:  # a section about something else (e.g. internal files)
            continue
        name = named.group(1)
        columns: dict[str, str] = {}
        extra = False
        table = re.search(r"^\| column \| type \| meaning \|\n\|[-|]+\|\n((?:\|.*\n?)*)", block, flags=re.M)
        for line in (table.group(1).splitlines() if table else []):
            names, typ = (cell.strip() for cell in line.strip("|").split("|")[:2])
            if names.startswith("*"):
                extra = True
                continue
            for col in (c.strip() for c in names.split(",")):
                columns[col] = typ
        if columns:
            tables[name] = (columns, extra)
    images = tables["images"][0]
    for columns, _ in tables.values():
        for col, typ in columns.items():
            if not typ:
                columns[col] = images[re.sub(r"_[ab]$", "", col)]
    return tables


def test_every_table_spec_matches_the_documentation():
    documented = documented_tables()
    assert set(documented) == set(TABLES)
    for name, spec in TABLES.items():
        columns, extra = documented[name]
        assert list(columns) == spec.names, name  # same columns, same order
        assert columns == {c.name: c.type for c in spec.columns}, name
        assert extra == spec.extra_columns_allowed, name


def test_writers_refuse_a_frame_that_breaks_its_table_contract(spark):
    ok = spark.createDataFrame([(1, 2, 1, 0.5, "ann", "r")],
                               "src bigint, dst bigint, rank int, similarity double, source string, run_id string")
    assert conform(ok.select("run_id", *ok.columns[:-1]), "neighbors").columns == TABLES["neighbors"].names
    with pytest.raises(SchemaMismatch, match="missing source"):
        conform(ok.drop("source"), "neighbors")
    with pytest.raises(SchemaMismatch, match="rank is bigint, not int"):
        conform(ok.withColumn("rank", ok["rank"].cast("bigint")), "neighbors")
    with pytest.raises(SchemaMismatch, match="unexpected note"):
        conform(ok.withColumn("note", ok["source"]), "neighbors")

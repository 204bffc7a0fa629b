"""The local session has what the jobs need: Delta, connected components, the cached jars."""
from __future__ import annotations

import pytest

from sparkdup.graph import connected_components
from sparkdup.session import cached_jars, delta_available, graphframes_available


def test_delta_write_and_read(spark, tmp_path):
    assert delta_available(spark), f"Delta jars missing from {cached_jars()}: run scripts/setup.sh"
    path = str(tmp_path / "t")
    spark.range(5).write.format("delta").save(path)
    spark.range(5, 8).write.format("delta").mode("append").save(path)
    assert sorted(r.id for r in spark.read.format("delta").load(path).collect()) == list(range(8))
    assert spark.sql(f"DESCRIBE HISTORY delta.`{path}`").count() == 2


@pytest.mark.parametrize("method", ["auto", "dataframe", "driver"])
def test_connected_components(spark, method):
    edges = spark.createDataFrame([(1, 2), (2, 3), (7, 8)], "src long, dst long")
    got = {r.id: r.component for r in connected_components(edges, method).collect()}
    assert got == {1: 1, 2: 1, 3: 1, 7: 7, 8: 7}


def test_graphframes_connected_components(spark, tmp_path):
    if not graphframes_available(spark):
        pytest.skip("GraphFrames jar not on the classpath (the registry here does not serve "
                    "io.graphframes); sparkdup uses its own implementations, tested above")
    spark.sparkContext.setCheckpointDir(str(tmp_path))
    edges = spark.createDataFrame([(1, 2), (2, 3), (7, 8)], "src long, dst long")
    got = {r.id: r.component for r in connected_components(edges, "graphframes").collect()}
    assert got == {1: 1, 2: 1, 3: 1, 7: 7, 8: 7}

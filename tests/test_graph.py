"""sparkdup.graph against ground truth computed here with scipy, and the methods against each other.

One graph holds every shape that has broken connected-components code before, most with
random 64-bit ids (negative ones and the extremes of bigint included): chains, stars
whose centre is not the smallest id, many tiny components, a 200-vertex path numbered in
order (the worst case for label propagation, and the most rounds for large/small-star),
the same path numbered in reverse and at random, self loops (alone and on vertices with
other edges), duplicate and reversed edges, rows with a null end, and sparse random
graphs. Running each method once on the union keeps the file fast; checks are per vertex.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_cc

from sparkdup import graph

EDGE_SCHEMA = "src bigint, dst bigint"
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def graph_spark(spark):
    """The test run's one local session (conftest.py)."""
    return spark


class Ids:
    """Distinct random 64-bit ids; the extremes are handed out first."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.used: set[int] = set()
        self.pending = [LONG_MIN, LONG_MAX, -1, 0]

    def __call__(self) -> int:
        while True:
            v = self.pending.pop() if self.pending else self.rng.randint(LONG_MIN, LONG_MAX)
            if v not in self.used:
                self.used.add(v)
                return v

    def many(self, n: int) -> list[int]:
        return [self() for _ in range(n)]


def build_edges(seed: int = 11) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    ids = Ids(seed)
    edges: list[tuple[int, int]] = []
    # chains
    for length in (2, 3, 5, 8, 30):
        v = ids.many(length)
        edges += list(zip(v, v[1:]))
    # stars, centre given the largest id (so the component is not named after it)
    for leaves in (1, 4, 50):
        v = sorted(ids.many(leaves + 1))
        centre = v[-1]
        edges += [(centre, leaf) if rng.random() < 0.5 else (leaf, centre) for leaf in v[:-1]]
    # many tiny components: pairs and triangles
    for _ in range(150):
        a, b = ids(), ids()
        edges.append((a, b))
    for _ in range(50):
        a, b, c = ids.many(3)
        edges += [(a, b), (b, c), (c, a)]
    # a 200-vertex path numbered in order along the path, from a large start
    start = 10**15
    edges += [(start + i, start + i + 1) for i in range(199)]
    # ... and numbered in reverse, then at random
    start = 2 * 10**15
    edges += [(start + i + 1, start + i) for i in range(199)]
    v = ids.many(200)
    edges += list(zip(v, v[1:]))
    # self loops: alone (twice), and on a vertex that has other edges
    lone = ids()
    edges += [(lone, lone), (lone, lone)]
    a, b = ids(), ids()
    edges += [(a, a), (a, b)]
    # duplicate and reversed edges
    a, b, c = ids.many(3)
    edges += [(a, b), (a, b), (b, a), (b, c), (c, b), (c, b)]
    # sparse random graphs: a forest of odd shapes
    for n, m in ((300, 250), (100, 120)):
        v = ids.many(n)
        edges += [(rng.choice(v), rng.choice(v)) for _ in range(m)]
    rng.shuffle(edges)
    return edges


def scipy_truth(edges: list[tuple[int, int]]) -> dict[int, int]:
    """vertex -> smallest id of its component, from scipy on the plain edge list."""
    vertices = sorted({v for e in edges for v in e})
    index = {v: i for i, v in enumerate(vertices)}
    rows = [index[s] for s, _ in edges]
    cols = [index[d] for _, d in edges]
    n = len(vertices)
    matrix = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(n, n))
    _, labels = scipy_cc(matrix, directed=False)
    smallest: dict[int, int] = {}
    for v, label in zip(vertices, labels):
        smallest[label] = min(smallest.get(label, v), v)
    return {v: smallest[label] for v, label in zip(vertices, labels)}


def as_dict(df) -> dict[int, int]:
    rows = df.collect()
    out = {r["id"]: r["component"] for r in rows}
    assert len(out) == len(rows), "a vertex appears more than once"
    return out


@pytest.fixture(scope="session")
def mixed_edges():
    return build_edges()


@pytest.fixture(scope="session")
def mixed_df(graph_spark, mixed_edges):
    # Plus rows with a null end: no edge, and their other end is no vertex.
    nulls = [(123456789, None), (None, 987654321), (None, None)]
    return graph_spark.createDataFrame(mixed_edges + nulls, EDGE_SCHEMA).cache()


@pytest.fixture(scope="session")
def truth(mixed_edges):
    return scipy_truth(mixed_edges)


@pytest.fixture(scope="session")
def results(mixed_df):
    """Each available method run once on the mixed graph (the dataframe one is the slow one)."""
    out = {
        "driver": as_dict(graph.connected_components(mixed_df, "driver")),
        "dataframe": as_dict(graph.connected_components(mixed_df, "dataframe", checkpoint_interval=2)),
        "auto": as_dict(graph.connected_components(mixed_df, "auto")),
    }
    return out


@pytest.fixture(scope="module")
def small_truth(mixed_edges, truth):
    """The mixed graph without its long paths (GraphFrames takes ~30 s an iteration here):
    every component of at most 40 vertices, and a 30-vertex path numbered in order."""
    sizes: dict[int, int] = {}
    for c in truth.values():
        sizes[c] = sizes.get(c, 0) + 1
    edges = [(s, d) for s, d in mixed_edges if s is not None and d is not None and sizes[truth[s]] <= 40]
    edges += [(10**12 + i, 10**12 + i + 1) for i in range(29)]
    return edges, scipy_truth(edges)


@pytest.fixture(scope="module")
def gf_results(graph_spark, small_truth):
    """GraphFrames (both algorithms), the DataFrame implementation and the driver path on one graph."""
    df = graph_spark.createDataFrame(small_truth[0], EDGE_SCHEMA).cache()
    out = {"driver": as_dict(graph.connected_components(df, "driver")),
           "dataframe": as_dict(graph.connected_components(df, "dataframe"))}
    if graph._graphframes_available(graph_spark):  # noqa: SLF001
        for algorithm in graph.GRAPHFRAMES_ALGORITHMS:
            out[f"graphframes-{algorithm}"] = as_dict(graph.connected_components(
                df, "graphframes", graphframes_algorithm=algorithm))
        out["auto-above-driver-limit"] = as_dict(graph.connected_components(df, "auto", driver_max_edges=10))
    return out


@pytest.mark.parametrize("method", ["graphframes-graphframes", "graphframes-graphx", "auto-above-driver-limit"])
def test_graphframes_matches_dataframe_driver_and_truth(gf_results, small_truth, method):
    if method not in gf_results:
        assert not graphframes_installed(), "GraphFrames is installed but was not used"
        pytest.skip("GraphFrames jar not on the classpath (needs io.graphframes:graphframes-spark4_2.13)")
    truth = small_truth[1]
    assert gf_results["driver"] == gf_results["dataframe"] == truth
    got = gf_results[method]
    assert set(got) == set(truth)
    wrong = {v: (got[v], truth[v]) for v in truth if got[v] != truth[v]}
    assert not wrong, f"{len(wrong)} vertices in the wrong component, e.g. {list(wrong.items())[:3]}"


def graphframes_installed() -> bool:
    """setup.sh put a GraphFrames jar in the jar cache: then its tests must run, not skip."""
    from sparkdup.session import cached_jars

    return any(Path(j).name.startswith("graphframes") for j in cached_jars())


def test_graphframes_is_loaded_when_installed(graph_spark):
    if not graphframes_installed():
        pytest.skip("no GraphFrames jar in the jar cache (scripts/setup.sh installs one when it can)")
    assert graph._graphframes_available(graph_spark), "the cached GraphFrames jar is not on the classpath"  # noqa: SLF001
    import graphframes  # the Python side matches (graphframes-py pin in scripts/requirements.txt)

    assert graphframes.__file__


# --------------------------------------------------------------------------- connected components


def test_ground_truth_has_the_intended_shapes(truth):
    # Guards the fixture itself: the path of 200 is one component, the lone self loop its own.
    sizes = sorted(np.unique(list(truth.values()), return_counts=True)[1])
    assert sizes[-1] >= 200
    assert sizes.count(1) >= 1
    assert len(sizes) > 200


@pytest.mark.parametrize("method", ["driver", "dataframe", "auto"])
def test_matches_scipy_ground_truth(results, truth, method):
    got = results[method]
    assert set(got) == set(truth), "every vertex that appears in an edge, and nothing else"
    wrong = {v: (got[v], truth[v]) for v in truth if got[v] != truth[v]}
    assert not wrong, f"{len(wrong)} vertices in the wrong component, e.g. {list(wrong.items())[:3]}"


def test_all_methods_agree(results):
    reference = results["driver"]
    for method, got in results.items():
        assert got == reference, method


def test_schema_is_the_same_for_every_method(mixed_df):
    for method in ("driver", "dataframe"):
        out = graph.connected_components(mixed_df.limit(3), method)
        assert [(f.name, f.dataType.simpleString()) for f in out.schema.fields] == [
            ("id", "bigint"), ("component", "bigint")
        ], method


def test_empty_graph(graph_spark):
    empty = graph_spark.createDataFrame([], EDGE_SCHEMA)
    for method in ("driver", "dataframe"):
        assert graph.connected_components(empty, method).count() == 0, method


def test_driver_path_restores_the_arrow_batch_setting(graph_spark):
    # It raises spark.sql.execution.arrow.maxRecordsPerBatch while it moves data; the image
    # UDFs rely on the session's small value.
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = graph_spark.conf.get(key)
    edges = graph_spark.createDataFrame([(1, 2)], EDGE_SCHEMA)
    assert as_dict(graph.connected_components(edges, "driver")) == {1: 1, 2: 1}
    assert graph_spark.conf.get(key) == before


def test_auto_uses_the_driver_for_small_graphs_and_dataframe_beyond(graph_spark, caplog):
    edges = graph_spark.createDataFrame([(9, 3), (3, 6), (10, 11)], EDGE_SCHEMA)
    expected = {3: 3, 6: 3, 9: 3, 10: 10, 11: 10}
    with caplog.at_level(logging.INFO, logger="sparkdup"):
        assert as_dict(graph.connected_components(edges, "auto", driver_max_edges=3)) == expected
    assert "driver/scipy" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sparkdup"):
        assert as_dict(graph.connected_components(edges, "auto", driver_max_edges=2)) == expected
    beyond = "GraphFrames" if graph._graphframes_available(graph_spark) else "large/small-star"  # noqa: SLF001
    assert beyond in caplog.text and "3 edges > driver_max_edges 2" in caplog.text


def test_driver_refuses_graphs_above_its_limit(graph_spark):
    edges = graph_spark.createDataFrame([(1, 2), (2, 3), (3, 4)], EDGE_SCHEMA)
    with pytest.raises(graph.GraphError, match="3 edges > driver_max_edges 2"):
        graph.connected_components(edges, "driver", driver_max_edges=2)


def test_max_iterations_guard(graph_spark):
    path = graph_spark.createDataFrame([(i, i + 1) for i in range(20)], EDGE_SCHEMA)
    with pytest.raises(graph.GraphError, match="did not converge in 1 iterations"):
        graph.connected_components(path, "dataframe", max_iterations=1)


def test_reliable_checkpoints(graph_spark, tmp_path_factory):
    # The checkpoint dir is per SparkContext and cannot be unset: only set one if none is.
    sc = graph_spark.sparkContext
    if not sc.getCheckpointDir():
        sc.setCheckpointDir(str(tmp_path_factory.mktemp("graph_checkpoints")))
    root = Path(sc.getCheckpointDir().removeprefix("file:"))
    before = set(root.rglob("*"))
    edges = graph_spark.createDataFrame([(i, i + 1) for i in range(5)] + [(100, 101)], EDGE_SCHEMA)
    got = as_dict(graph.connected_components(edges, "dataframe", checkpoint="reliable", checkpoint_interval=1))
    assert got == {**{i: 0 for i in range(6)}, 100: 100, 101: 100}
    assert set(root.rglob("*")) - before, "a reliable checkpoint was written"


def test_bad_arguments(graph_spark):
    edges = graph_spark.createDataFrame([(1, 2)], EDGE_SCHEMA)
    with pytest.raises(ValueError, match="method must be one of"):
        graph.connected_components(edges, "pregel")
    with pytest.raises(ValueError, match="need columns src and dst"):
        graph.connected_components(edges.withColumnRenamed("dst", "to"), "driver")
    if not graph._graphframes_available(graph_spark):  # noqa: SLF001
        with pytest.raises(graph.GraphError, match="GraphFrames jar"):
            graph.connected_components(edges, "graphframes")


# --------------------------------------------------------------------------- degrees


def test_degrees_count_distinct_neighbours(mixed_df, mixed_edges):
    neighbours: dict[int, set[int]] = {}
    for s, d in mixed_edges:
        neighbours.setdefault(s, set())
        neighbours.setdefault(d, set())
        if s != d:
            neighbours[s].add(d)
            neighbours[d].add(s)
    expected = {v: len(n) for v, n in neighbours.items()}
    gf = graph._graphframes_available(mixed_df.sparkSession)  # noqa: SLF001
    assert gf or not graphframes_installed()
    runs = [("dataframe", 0), ("auto", 2_000_000)] + ([("graphframes", 0), ("auto", 0)] if gf else [])
    for method, limit in runs:  # auto with limit 0: above the driver threshold, GraphFrames
        rows = graph.degrees(mixed_df, method, driver_max_edges=limit).collect()
        got = {r["id"]: r["degree"] for r in rows}
        assert len(got) == len(rows) and got == expected, method
    assert 0 in expected.values(), "a self-loop-only vertex is present, with degree 0"

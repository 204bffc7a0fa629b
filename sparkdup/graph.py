"""Graph algorithms for the analyze stage: connected components and degrees.

The analyze stage turns "these two images are near-duplicates" edges into duplicate
groups (connected components) and uses neighbour counts (degrees) in outlier scores.
Everything here is a pure function of DataFrames: no tables are read or written, and the
session's settings are left as they are.

Connected components has three implementations because no single one wins everywhere
(measured by ``benchmarks/bench_components.py``):

* ``driver`` -- collect the edges and run scipy on the driver. Duplicate graphs are
  usually small (a few edges per duplicated image), and for them this is seconds where a
  distributed algorithm is minutes. Bounded by ``driver_max_edges`` so the driver never
  collects an unbounded amount (the design's "driver never collects per-image data
  except a bounded, configurable amount").
* ``graphframes`` -- GraphFrames' ``connectedComponents()``, when its jar is on the
  classpath (scripts/setup.sh installs it; the Databricks ML runtime has it), with
  GraphX's algorithm (measured faster than GraphFrames' own on duplicate graphs:
  GRAPHFRAMES_ALGORITHM) and checkpoints. Battle-tested, with skew handling.
* ``dataframe`` -- the same family of algorithm (alternating large-star / small-star,
  Kiveris et al., "Connected Components in MapReduce and Beyond", SoCC 2014) in plain
  Spark DataFrames, so that graphs too big for the driver work on any Spark 4 cluster,
  with no extra jar.

All three return the same table: one row per vertex that appears in an edge, with
``component`` = the smallest id of its component, so a component id is stable across
methods and reruns and doubles as "the representative with the smallest id".
"""
from __future__ import annotations

import logging
import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType
from pyspark.sql.window import Window

from sparkdup.errors import GraphEngineError
from sparkdup.session import temporary_conf

log = logging.getLogger("sparkdup")

METHODS = ("auto", "graphframes", "dataframe", "driver")

# GraphFrames offers two connected-components algorithms: its own ("graphframes", the
# same large/small-star family as ours, on DataFrames) and GraphX's Pregel label
# propagation ("graphx", rounds = the graph's diameter). Chosen by measurement
# (benchmarks/bench_components.py, BENCHMARKS.md "Graph engines").
GRAPHFRAMES_ALGORITHMS = ("graphframes", "graphx")
GRAPHFRAMES_ALGORITHM = "graphx"  # 1M duplicate-like edges: 103 s wall / 7.4 s task CPU vs 183 s / 13.7 s
# graphframes-py 0.10's default max_iter is written `2 ^ 31 - 2`, which Python reads as 31:
# GraphX's Pregel then stops after 31 rounds, wrong on any path longer than that
# (measured: a 200-vertex path came back split). Pass the intended bound.
GRAPHX_MAX_ITERATIONS = 2**31 - 2

# Rows per Arrow batch when the driver path moves edges and results (16 bytes a row).
ARROW_BATCH_ROWS = 500_000

COMPONENTS_SCHEMA = StructType([StructField("id", LongType(), False), StructField("component", LongType(), False)])


class GraphError(GraphEngineError, RuntimeError):
    """A graph computation that cannot proceed as asked; the message says what to change."""


# --------------------------------------------------------------------------- helpers


def _spark(df: DataFrame) -> SparkSession:
    return df.sparkSession


def _clean_edges(edges: DataFrame) -> DataFrame:
    """Just ``src``/``dst`` as bigint, rows with a null end dropped (a null is no vertex)."""
    missing = {"src", "dst"} - set(edges.columns)
    if missing:
        raise ValueError(f"edges need columns src and dst (missing: {', '.join(sorted(missing))})")
    return (
        edges.select(F.col("src").cast("bigint").alias("src"), F.col("dst").cast("bigint").alias("dst"))
        .where(F.col("src").isNotNull() & F.col("dst").isNotNull())
    )


def _oriented(edges: DataFrame) -> DataFrame:
    """Every edge as (larger id, smaller id), self loops dropped; duplicates still there.

    Orienting every edge "towards the smaller id" is the invariant both star steps keep.
    """
    return edges.select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst")).where(
        F.col("src") != F.col("dst")
    )


def _undirected(edges: DataFrame) -> DataFrame:
    """Each undirected edge once, as (larger id, smaller id), self loops dropped."""
    return _oriented(edges).distinct()


def _graphframes_available(spark: SparkSession) -> bool:
    from sparkdup.session import graphframes_available

    try:
        return graphframes_available(spark)
    except Exception:  # noqa: BLE001 - e.g. Spark Connect has no JVM handle: treat as absent
        return False


def _checkpoint_dir(spark: SparkSession) -> str | None:
    try:
        return spark.sparkContext.getCheckpointDir()
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext
        return None


def _arrow_batch_rows(spark: SparkSession, rows: int):
    """Temporarily set ``spark.sql.execution.arrow.maxRecordsPerBatch``, then restore it.

    sparkdup keeps that setting tiny (``decode.arrow_batch_rows``, 64) to bound the memory
    of image UDFs, but toArrow and createDataFrame use it too: 64-row batches made
    moving 10M 16-byte edges 17 s instead of about 2 s.
    """
    return temporary_conf(spark, {"spark.sql.execution.arrow.maxRecordsPerBatch": rows})


# --------------------------------------------------------------------------- public API


def connected_components(
    edges: DataFrame,
    method: str = "auto",
    driver_max_edges: int = 2_000_000,
    *,
    max_iterations: int = 40,
    checkpoint: str = "local",
    checkpoint_interval: int = 4,
    graphframes_algorithm: str = GRAPHFRAMES_ALGORITHM,
) -> DataFrame:
    """Connected components of the undirected graph given by ``edges`` (``src``, ``dst``).

    Returns ``id``, ``component`` (both bigint) for every vertex that appears in an edge,
    where ``component`` is the smallest id in that vertex's component. Edge direction,
    duplicate edges and self loops do not matter (a vertex seen only in a self loop is
    its own component).

    ``method``: ``auto`` | ``graphframes`` | ``dataframe`` | ``driver`` (module
    docstring says when each fits). ``auto`` takes the driver when the graph has at most
    ``driver_max_edges`` edge rows (fastest, measured), else GraphFrames when its jar is
    loaded, else the DataFrame implementation, and logs which and why.

    ``max_iterations``, ``checkpoint`` (``local`` or ``reliable``) and
    ``checkpoint_interval`` tune the ``dataframe`` method (see
    :func:`connected_components_dataframe`) and the GraphFrames one (its checkpoint
    interval; reliable checkpoints into the session's checkpoint directory when one is
    set); ``graphframes_algorithm`` picks GraphFrames' algorithm.

    The input is read more than once (counted, then processed): pass a cached or
    materialised DataFrame when it is expensive to compute.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    spark = _spark(edges)
    edges = _clean_edges(edges)

    gf = {"algorithm": graphframes_algorithm, "checkpoint_interval": min(checkpoint_interval, 2)}
    if method == "graphframes":
        return connected_components_graphframes(edges, **gf)
    if method == "dataframe":
        return connected_components_dataframe(
            edges, max_iterations=max_iterations, checkpoint=checkpoint, checkpoint_interval=checkpoint_interval
        )
    if method == "driver":
        return connected_components_driver(edges, driver_max_edges=driver_max_edges)

    # auto: the driver path wins wherever it is allowed (measured: 7 s at 10M edges against
    # 90 s for the DataFrame path here, and 40-140 s for GraphFrames at 1M edges, BENCHMARKS.md);
    # above the limit, GraphFrames when its jar is loaded, else the DataFrame path.
    n_edges = edges.count()
    if n_edges <= driver_max_edges:
        log.info("connected components: driver/scipy (%d edges <= driver_max_edges %d)", n_edges, driver_max_edges)
        return connected_components_driver(edges, driver_max_edges=driver_max_edges, n_edges=n_edges)
    if _graphframes_available(spark):
        log.info("connected components: GraphFrames %s (%d edges > driver_max_edges %d; jar loaded)",
                 graphframes_algorithm, n_edges, driver_max_edges)
        return connected_components_graphframes(edges, **gf)
    log.info(
        "connected components: distributed DataFrame large/small-star "
        "(%d edges > driver_max_edges %d; GraphFrames jar not loaded)",
        n_edges, driver_max_edges,
    )
    return connected_components_dataframe(
        edges, max_iterations=max_iterations, checkpoint=checkpoint, checkpoint_interval=checkpoint_interval
    )


def connected_components_driver(edges: DataFrame, driver_max_edges: int = 2_000_000,
                                n_edges: int | None = None) -> DataFrame:
    """Collect the edges and label components with scipy on the driver.

    Refuses (``GraphError``) graphs with more than ``driver_max_edges`` edge rows before
    collecting anything: the bound is what keeps the driver's memory predictable
    (about 100 bytes of driver Python memory per edge row at peak: the Arrow copy, the
    id arrays, the factorisation and the sparse matrix; 1 GB at 10M edges). The ids are
    factorised to 0..n-1 because scipy wants dense indices and the ids are arbitrary
    64-bit values.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_cc

    spark = _spark(edges)
    edges = _clean_edges(edges)
    if n_edges is None:
        n_edges = edges.count()
    if n_edges > driver_max_edges:
        raise GraphError(
            f"driver connected components refused: {n_edges} edges > driver_max_edges {driver_max_edges}; "
            "use method='dataframe' (or 'graphframes'), or raise driver_max_edges if the driver has the memory"
        )
    t0 = time.perf_counter()
    with _arrow_batch_rows(spark, ARROW_BATCH_ROWS):
        table = edges.toArrow()  # Arrow batches straight from the executors, no per-row Python objects
    m = table.num_rows
    both = np.concatenate([table.column("src").to_numpy(), table.column("dst").to_numpy()])
    del table
    # Hash-based: 6x faster than np.unique(return_inverse=True), which argsorts 2m values.
    codes, ids = pd.factorize(both)
    del both
    n = len(ids)
    if n == 0:
        return spark.createDataFrame([], COMPONENTS_SCHEMA)
    codes = codes.astype(np.int64 if n > np.iinfo(np.int32).max else np.int32, copy=False)
    # Duplicate entries are summed into one; a self loop is a diagonal entry: both harmless.
    graph = coo_matrix((np.ones(m, dtype=np.int8), (codes[:m], codes[m:])), shape=(n, n)).tocsr()
    del codes
    n_comp, labels = scipy_cc(graph, directed=False, return_labels=True)
    del graph
    # labels are 0..n_comp-1, all present: the sorted group-by index is the label itself.
    smallest = pd.Series(ids).groupby(labels, sort=True).min().to_numpy()
    component = smallest[labels]
    log.info("driver connected components: %d edges, %d vertices, %d components in %.1f s (collect included)",
             m, n, n_comp, time.perf_counter() - t0)
    result = pa.table({"id": pa.array(ids, pa.int64()), "component": pa.array(component, pa.int64())})
    with _arrow_batch_rows(spark, ARROW_BATCH_ROWS):
        return spark.createDataFrame(result, COMPONENTS_SCHEMA)


def connected_components_graphframes(edges: DataFrame, algorithm: str = GRAPHFRAMES_ALGORITHM,
                                     checkpoint_interval: int = 2) -> DataFrame:
    """GraphFrames' connected components, with ``component`` normalised to the smallest id.

    ``algorithm``: ``graphframes`` or ``graphx`` (GRAPHFRAMES_ALGORITHMS). Checkpoints
    every ``checkpoint_interval`` iterations into the session's checkpoint directory when
    one is set (``sparkdup.session.ensure_checkpoint_dir``), local checkpoints otherwise.
    Skewed joins are left to AQE (``broadcastThreshold=-1``, GraphFrames' recommendation).
    (GraphFrames warns that intervals above 2 blow up its query plans: measured here, an
    interval of 4 ran the driver out of heap on a 200-vertex path, so callers get at most 2.)
    GraphFrames already names a component by its smallest id for integer ids, but that
    is an implementation detail of theirs; one extra min-per-component aggregation makes
    it part of our contract whatever the GraphFrames version.
    """
    spark = _spark(edges)
    if not _graphframes_available(spark):
        raise GraphError(
            "method='graphframes' needs the GraphFrames jar (io.graphframes:graphframes-spark4_2.13) "
            "on the classpath; use method='auto', 'dataframe' or 'driver'"
        )
    if algorithm not in GRAPHFRAMES_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(GRAPHFRAMES_ALGORITHMS)}, got '{algorithm}'")
    from graphframes import GraphFrame

    edges = _clean_edges(edges)
    vertices = edges.select(F.explode(F.array("src", "dst")).alias("id")).distinct()
    local = _checkpoint_dir(spark) is None
    if local:
        log.info("GraphFrames connected components: no checkpoint dir set, using local checkpoints")
    cc = GraphFrame(vertices, edges).connectedComponents(
        algorithm=algorithm, checkpointInterval=max(1, int(checkpoint_interval)), broadcastThreshold=-1,
        use_local_checkpoints=local, max_iter=GRAPHX_MAX_ITERATIONS).select("id", "component")
    smallest = cc.groupBy("component").agg(F.min("id").alias("smallest"))
    return cc.join(smallest, "component").select("id", F.col("smallest").alias("component"))


def connected_components_dataframe(
    edges: DataFrame,
    max_iterations: int = 40,
    checkpoint: str = "local",
    checkpoint_interval: int = 4,
) -> DataFrame:
    """Alternating large-star / small-star connected components in plain DataFrames.

    Edges are kept undirected, distinct and oriented towards the smaller id
    (``src > dst``). With ``m(v)`` = the smallest of v and its smaller neighbours:

    * large-star: every edge (s, d) becomes (s, m(d)) -- each vertex hands its larger
      neighbours over to its own smallest neighbour;
    * small-star: every edge (s, d) becomes (d, m(s)), or stays (s, m(s)) when d is
      m(s) -- each vertex links its smaller neighbours to the smallest of them.

    Both keep connectivity and only ever point edges at smaller ids, so the edge set
    converges to one star per component centred on its smallest id; stars are the one
    fixed point. Each row carries a ``changed`` flag, so convergence is exact: the loop
    stops after an iteration in which no edge changed, and that is one cheap scan of the
    materialised edge set, not a comparison of two edge sets. The number of iterations is
    logarithmic in practice (Kiveris et al. prove O(log^2 n)); a 200-vertex path takes
    9 iterations when numbered in path order, where label propagation would take 200.

    Every iteration is materialised and its lineage cut, because each step reads the
    previous edge set twice and an uncut plan doubles in size per iteration.
    ``checkpoint='local'`` uses ``localCheckpoint`` every iteration (executor storage;
    fast, but lost with an executor). ``checkpoint='reliable'`` additionally writes a
    reliable ``checkpoint`` every ``checkpoint_interval`` iterations to the session's
    checkpoint directory, which must be set, so a lost executor costs at most that many
    iterations. More than ``max_iterations`` iterations raises ``GraphError``.
    """
    if checkpoint not in ("local", "reliable"):
        raise ValueError(f"checkpoint must be 'local' or 'reliable', got '{checkpoint}'")
    if max_iterations < 1 or checkpoint_interval < 1:
        raise ValueError("max_iterations and checkpoint_interval must be at least 1")
    spark = _spark(edges)
    if checkpoint == "reliable" and _checkpoint_dir(spark) is None:
        raise GraphError(
            "checkpoint='reliable' needs a checkpoint directory: call "
            "sparkdup.session.ensure_checkpoint_dir(spark, cfg, output) first, or use checkpoint='local'"
        )
    edges = _clean_edges(edges)
    # A vertex seen only in self loops has no edge left after _undirected: keep it aside.
    loop_vertices = edges.where(F.col("src") == F.col("dst")).select(F.col("src").alias("id")).distinct()

    def materialise(df: DataFrame, iteration: int) -> DataFrame:
        if checkpoint == "reliable" and iteration % checkpoint_interval == 0:
            return df.checkpoint(eager=True)
        return df.localCheckpoint(eager=True)

    t_start = time.perf_counter()
    current = materialise(_distinct_by_src(_oriented(edges).withColumn("changed", F.lit(True))), 0)
    n_edges = current.count()
    log.info("dataframe connected components: %d undirected edges", n_edges)

    iteration, changed = 0, n_edges
    while True:
        if iteration >= max_iterations:
            raise GraphError(
                f"dataframe connected components did not converge in {max_iterations} iterations "
                f"({changed} edges still changing of {n_edges}); raise max_iterations "
                "or use method='graphframes'"
            )
        iteration += 1
        t0 = time.perf_counter()
        current = materialise(_small_star(_large_star(current)), iteration)
        n_edges, changed = current.agg(
            F.count(F.lit(1)), F.coalesce(F.sum(F.col("changed").cast("long")), F.lit(0))
        ).first()
        log.info("dataframe connected components: iteration %d: %d edges, %d changed, %.1f s",
                 iteration, n_edges, changed, time.perf_counter() - t0)
        if changed == 0:
            break
    log.info("dataframe connected components: converged after %d iterations in %.1f s",
             iteration, time.perf_counter() - t_start)

    # Stars now: every edge is (member, smallest id of its component).
    stars = current.select("src", "dst")
    members = stars.select(F.col("src").alias("id"), F.col("dst").alias("component"))
    centres = stars.select(F.col("dst").alias("id"), F.col("dst").alias("component")).distinct()
    linked = members.unionByName(centres)
    alone = loop_vertices.join(linked, "id", "left_anti").select("id", F.col("id").alias("component"))
    return linked.unionByName(alone)


def _large_star(e: DataFrame) -> DataFrame:
    """(s, d) -> (s, m(d)), m(d) = min(d, smallest neighbour of d); then distinct.

    With edges oriented src > dst, d's smaller neighbours are exactly the rows whose src
    is d, so m(d) is one aggregation joined back on dst: no symmetrised copy needed.
    """
    smallest = e.groupBy("src").agg(F.min("dst").alias("m")).withColumnRenamed("src", "v")
    moved = e.join(smallest, e["dst"] == smallest["v"], "left").select(
        e["src"],
        F.coalesce(F.col("m"), e["dst"]).alias("dst"),
        F.col("m").isNotNull().alias("changed"),
    )
    return _distinct_by_src(moved)


def _small_star(e: DataFrame) -> DataFrame:
    """(s, d) -> (d, m(s)) for d != m(s), (s, m(s)) unchanged otherwise; then distinct.

    m(s) = the smallest neighbour of s (all its neighbours in ``e`` are smaller). A
    window over src finds it in the same pass, without a join. ``changed`` accumulates
    the large-star flag so one scan after both steps decides convergence.
    """
    m = F.min("dst").over(Window.partitionBy("src"))
    with_m = e.withColumn("m", m)
    stays = F.col("dst") == F.col("m")
    moved = with_m.select(
        F.when(stays, F.col("src")).otherwise(F.col("dst")).alias("src"),
        F.col("m").alias("dst"),
        (F.col("changed") | ~stays).alias("changed"),
    )
    return _distinct_by_src(moved)


def _distinct_by_src(e: DataFrame) -> DataFrame:
    """Distinct (src, dst), OR-ing ``changed``, hash-partitioned by src alone.

    Partitioning by src rather than (src, dst) serves three consumers with one shuffle:
    this distinct, the small-star window over src, and the next large-star's
    min-per-src aggregation (checkpoints keep the partitioning), which then need no
    exchange of their own. It also never skews: after the first steps every src has
    few rows, while the hubs (component minima) sit on the dst side.
    """
    return e.repartition("src").groupBy("src", "dst").agg(F.max("changed").alias("changed"))


def degrees(edges: DataFrame, method: str = "auto", driver_max_edges: int = 2_000_000) -> DataFrame:
    """``id``, ``degree``: how many distinct other vertices each vertex shares an edge with.

    The graph is read as undirected and simple: a→b and b→a, or the same edge listed
    twice (an image is usually both a neighbour of and neighboured by its duplicate) are
    one neighbour, and a self loop is none. Every vertex that appears in an edge is
    returned, a vertex seen only in a self loop with degree 0. ``method``: ``auto``
    (GraphFrames when its jar is loaded and the graph has more than ``driver_max_edges``
    edge rows, the DataFrame group-by below that, where GraphFrames' setup is all cost),
    ``graphframes`` or ``dataframe``; all give the same table, since GraphFrames' degrees
    is the same group-by over the canonical edges.
    """
    if method not in ("auto", "graphframes", "dataframe"):
        raise ValueError(f"method must be auto, graphframes or dataframe, got '{method}'")
    spark = _spark(edges)
    edges = _clean_edges(edges)
    simple = _undirected(edges)
    vertices = edges.select(F.explode(F.array("src", "dst")).alias("id")).distinct()
    use_gf = method == "graphframes" or (
        method == "auto" and _graphframes_available(spark) and edges.count() > driver_max_edges)
    if use_gf:
        if not _graphframes_available(spark):
            raise GraphError("method='graphframes' needs the GraphFrames jar on the classpath")
        from graphframes import GraphFrame

        counted = GraphFrame(vertices, simple).degrees
    else:
        counted = (
            simple.select(F.explode(F.array("src", "dst")).alias("id")).groupBy("id").agg(F.count(F.lit(1)).alias("degree"))
        )
    return vertices.join(counted, "id", "left").select(
        "id", F.coalesce(F.col("degree").cast("long"), F.lit(0).cast("long")).alias("degree")
    )

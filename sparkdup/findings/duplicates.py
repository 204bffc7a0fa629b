"""Duplicate pairs and groups: candidate pairs from the neighbour graph, verified on
executors, then components split into verified stars around their representatives.

1. Candidates: neighbour pairs with cosine >= ``analyze.duplicate_similarity`` (plus
   every ``hash`` link). Cosine alone never makes a duplicate: look-alikes (frames of one
   animation, icons of one theme) sit at the same cosines as edited copies.
2. Verification (udfs.verify, a pandas UDF on the candidate pairs only): aligned colour
   thumbnails at two scales with a crop search; a pair whose best coarse (16 x 16) window
   correlates below ``verify_min_coarse`` is rejected there, without the fine search. A
   pair is a duplicate when its bytes are identical, or when it passes
   the rule of udfs.verify.verdict, applied inside the UDF (one copy of the rule for
   analyze, search and the replays): aligned fine correlation >= ``verify_min_fine``, share of locally changed
   pixels <= ``verify_max_changed``, worst tile's residual (``local``, an overlay may sit
   there) <= ``verify_max_local``, the second-worst's (``local_rest``) <=
   ``verify_max_local_rest``, opponent colour residual (``chroma``) <= ``verify_max_chroma``.
   Every candidate is kept with its scores, decision and reason in ``duplicate_pairs``.
3. Groups: files with one content_hash are one unit (so byte-identical files are always
   together, whatever the neighbour index returned); connected components of the verified
   links between units are split into stars (udfs.stars, a grouped pandas UDF per
   component), so every member is verified against its group's representative.
"""
from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from sparkdup.graph import connected_components
from sparkdup.udfs.stars import stars
from sparkdup.udfs.verify import RULE_KEYS, SCORES, compare_many, verdict

VERIFY_SCHEMA = T.StructType([
    T.StructField("status", T.StringType()),
    T.StructField("coarse", T.DoubleType()),
    T.StructField("fine", T.DoubleType()),
    T.StructField("changed", T.DoubleType()),
    T.StructField("local", T.DoubleType()),
    T.StructField("local_rest", T.DoubleType()),
    T.StructField("chroma", T.DoubleType()),
    T.StructField("reason", T.StringType()),
])


def verify_pairs(an: dict):
    """The pandas UDF giving each pair's aligned-thumbnail scores (udfs.verify.compare_many,
    which prepares the images of each chunk of pairs together and skips the fine search below
    ``verify_min_coarse``) and the rule's verdict on them (udfs.verify.verdict); null
    signatures give a status."""
    min_coarse = an["verify_min_coarse"]
    rule = {k: an[k] for k in RULE_KEYS}

    @pandas_udf(VERIFY_SCHEMA)
    def scores(a: pd.Series, b: pd.Series) -> pd.DataFrame:
        rows = compare_many(a, b, min_coarse)
        for row in rows:
            row["reason"] = verdict(row, rule)
        return pd.DataFrame(rows, columns=[*SCORES, "reason"])

    return scores


def undirected(edges: DataFrame) -> DataFrame:
    """One row per unordered pair (a < b), keeping the highest similarity seen."""
    return (edges.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b"), "similarity")
            .where(F.col("a") != F.col("b"))
            .groupBy("a", "b").agg(F.max("similarity").alias("similarity")))


def units(images: DataFrame) -> DataFrame:
    """Every decoded image with its unit: the smallest image_id sharing its content_hash, and
    how many files share it (``copies``)."""
    by_hash = Window.partitionBy("content_hash")
    return (images.where((F.col("status") == "ok") & F.col("content_hash").isNotNull())
            .select("image_id", "path", "content_hash", "width", "height", "size_bytes", "label", "split")
            .withColumn("unit", F.min("image_id").over(by_hash))
            .withColumn("copies", F.count(F.lit(1)).over(by_hash).cast("int")))


def duplicate_pairs(images: DataFrame, neighbors: DataFrame, an: dict) -> DataFrame:
    """Each candidate pair once (image_id_a < image_id_b), verified, with its evidence and decision."""
    candidates = undirected(neighbors.where((F.col("similarity") >= an["duplicate_similarity"])
                                            | (F.col("source") == "hash")))
    side = images.where(F.col("status") == "ok").select("image_id", "path", "content_hash", "signature")

    def named(s: str) -> DataFrame:
        return side.select(*[F.col(c).alias(f"{c}_{s}") for c in side.columns])

    pairs = (candidates.withColumnRenamed("a", "image_id_a").withColumnRenamed("b", "image_id_b")
             .join(named("a"), "image_id_a").join(named("b"), "image_id_b")
             .withColumn("hash_match", F.col("content_hash_a") == F.col("content_hash_b"))
             # One image's pairs next to each other: the UDF prepares an image once per run of them.
             # By b alone: the join on image_id_b already orders them so, and Spark then sorts nothing
             # (a sort on (b, a) moved every pair's two 12 KB thumbnails through one more sort).
             .sortWithinPartitions("image_id_b"))
    # Byte-identical pairs need no pixels compared: null signatures skip the work in the UDF.
    scores = verify_pairs(an)(F.when(~F.col("hash_match"), F.col("signature_a")),
                              F.when(~F.col("hash_match"), F.col("signature_b")))
    verified = pairs.withColumn("v", scores)
    reason = F.when(F.col("hash_match"), F.lit("hash")).otherwise(F.col("v.reason"))
    return verified.select(
        "image_id_a", "path_a", "image_id_b", "path_b", "hash_match",
        F.round(F.when(F.col("hash_match"), F.lit(1.0)).otherwise(F.col("similarity")), 6).alias("similarity"),
        F.when(F.col("hash_match"), F.lit("hash")).otherwise(F.col("v.status")).alias("verify_status"),
        F.round("v.coarse", 6).alias("align_coarse"), F.round("v.fine", 6).alias("align_fine"),
        F.round("v.changed", 6).alias("align_changed"), F.round("v.local", 6).alias("align_local"),
        F.round("v.local_rest", 6).alias("align_local_rest"), F.round("v.chroma", 6).alias("align_chroma"),
        (F.col("hash_match") | (F.col("v.reason") == "verified")).alias("is_duplicate"),
        reason.alias("reason"))


def checkpointing(spark: SparkSession) -> dict:
    """How the distributed connected components cut lineage: reliable checkpoints, every
    iteration, in the session's checkpoint directory when one is set (run() sets
    <output>/_checkpoints, on storage every executor sees). A local checkpoint lives in
    executor storage and cuts the lineage it could be recomputed from, so losing one
    executor would fail the whole stage; a duplicate-edge graph is small, so writing it each
    iteration costs little. Without a checkpoint directory: local checkpoints."""
    try:
        has_dir = bool(spark.sparkContext.getCheckpointDir())
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext
        has_dir = False
    return {"checkpoint": "reliable", "checkpoint_interval": 1} if has_dir else {}


STAR_SCHEMA = T.StructType([T.StructField("unit", T.LongType()), T.StructField("rep_unit", T.LongType())])


def duplicate_groups(images: DataFrame, pairs: DataFrame, an: dict) -> DataFrame:
    """One row per member of each group of duplicates, from the verified ``pairs``.

    The representative is the member with the most pixels, then the largest file, then the
    smallest path. ``kind`` is ``exact`` for a member whose bytes another member shares,
    else ``near``; a near member carries the scores of its verified link to the
    representative (``evidence`` = ``verified``), an exact one ``evidence`` = ``hash``.
    """
    files = units(images)
    unit_of = files.select("image_id", "unit")
    links = (pairs.where(F.col("is_duplicate") & ~F.col("hash_match"))
             .join(unit_of.select(F.col("image_id").alias("image_id_a"), F.col("unit").alias("ua")), "image_id_a")
             .join(unit_of.select(F.col("image_id").alias("image_id_b"), F.col("unit").alias("ub")), "image_id_b")
             .where(F.col("ua") != F.col("ub"))
             .select(F.least("ua", "ub").alias("unit_a"), F.greatest("ua", "ub").alias("unit_b"),
                     "similarity", "align_fine", "align_changed", "align_local")
             .groupBy("unit_a", "unit_b")
             .agg(F.max_by(F.struct("similarity", "align_fine", "align_changed", "align_local"),
                           F.col("align_fine")).alias("s"))
             .select("unit_a", "unit_b", "s.*"))
    comps = connected_components(links.select(F.col("unit_a").alias("src"), F.col("unit_b").alias("dst")),
                                 an["components_method"], an["driver_max_edges"],
                                 **checkpointing(images.sparkSession))
    # Per unit: its best file's size for the representative order (copies share pixels and bytes).
    unit_rows = (files.groupBy("unit").agg(
        F.first((F.col("width").cast("long") * F.col("height"))).alias("pixels"),
        F.first("size_bytes").cast("long").alias("size_bytes"),
        F.min("path").alias("path"), F.first("copies").alias("copies")))
    in_components = unit_rows.join(comps.select(F.col("id").alias("unit"), "component"), "unit", "left")
    # A unit of byte-identical files with no verified link is its own component.
    grouped_units = (in_components.where(F.col("component").isNotNull() | (F.col("copies") >= 2))
                     .withColumn("component", F.coalesce("component", "unit")))
    comp_edges = links.join(comps.select(F.col("id").alias("unit_a"), "component"), "unit_a").select(
        "component", "unit_a", "unit_b")
    assigned = (grouped_units.select("component", "unit", "pixels", "size_bytes", "path", "copies")
                .groupBy("component").cogroup(comp_edges.groupBy("component"))
                .applyInPandas(stars, STAR_SCHEMA))
    members = files.join(assigned, "unit")
    order = Window.partitionBy("rep_unit").orderBy(
        (F.col("width").cast("long") * F.col("height")).desc(), F.col("size_bytes").desc(), F.col("path"))
    by_group = Window.partitionBy("rep_unit")
    scores = ("similarity", "align_fine", "align_changed", "align_local")
    to_rep = links.select(F.col("unit_a").alias("x"), F.col("unit_b").alias("y"), *scores)
    to_rep = to_rep.unionByName(to_rep.select(F.col("y").alias("x"), F.col("x").alias("y"), *scores))
    members = (members
               .withColumn("representative_id", F.first("image_id").over(order))
               .withColumn("group_id", F.min("image_id").over(by_group))
               .withColumn("group_size", F.count(F.lit(1)).over(by_group).cast("int"))
               .join(to_rep.withColumnRenamed("x", "rep_unit").withColumnRenamed("y", "unit"),
                     ["rep_unit", "unit"], "left"))
    same_bytes = F.col("unit") == F.col("rep_unit")
    return (members.where(F.col("group_size") >= 2).select(
        "group_id", "image_id", "path", "group_size",
        F.when(F.col("copies") >= 2, F.lit("exact")).otherwise(F.lit("near")).alias("kind"),
        "representative_id", (F.col("image_id") == F.col("representative_id")).alias("is_representative"),
        F.when(F.col("image_id") == F.col("representative_id"), F.lit("representative"))
        .when(same_bytes, F.lit("hash")).otherwise(F.lit("verified")).alias("evidence"),
        F.round(F.when(same_bytes, F.lit(1.0)).otherwise(F.col("similarity")), 6).alias("similarity_to_representative"),
        F.round(F.when(same_bytes, F.lit(1.0)).otherwise(F.col("align_fine")), 6).alias("align_fine_to_representative"),
        F.round(F.when(same_bytes, F.lit(0.0)).otherwise(F.col("align_changed")), 6)
        .alias("align_changed_to_representative"),
        F.round(F.when(same_bytes, F.lit(0.0)).otherwise(F.col("align_local")), 6)
        .alias("align_local_to_representative"),
        "content_hash", "label", "split"))

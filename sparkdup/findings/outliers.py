"""Outliers: how unusual each embedded image is, robust to small clusters of anomalies.

"1 - mean similarity to the k nearest" calls a group of look-alike anomalies (three blank
scans, four noise frames) normal: they are each other's nearest neighbours. The score here
combines evidence that such a group cannot hide from, each put on one scale as a robust
z-score over the whole table ((x - median) / (1.4826 MAD), medians from approxQuantile):

- `knn_distance`: cosine distance to the k-th nearest neighbour (k = analyze.outlier_k,
  larger than a typical anomaly cluster): an anomaly's k-th neighbour lies outside its
  little group (Eskin et al. 2002; Ramaswamy, Rastogi and Shim, SIGMOD 2000);
- `lof`: the local outlier factor (Breunig, Kriegel, Ng and Sander, SIGMOD 2000), its
  neighbourhood's density relative to its neighbours' own densities;
- `contrast` and `noise_ratio`, from the image statistics ingest already computed:
  a blank image has no luminance contrast, and uniform noise has a Laplacian variance
  near 20 x its luminance variance (neighbouring pixels independent), where natural
  images and drawings, whose neighbouring pixels correlate, stay far below. Both are
  outliers of any natural dataset whatever their embedding says;
- `label_distance`: cosine distance to the centroid of its own label, as a z-score within
  that label (how unusual it is inside its class), weighted by analyze.outlier_label_weight
  (0.5: a wrongly labelled image is unusual in its label without being an outlier);
- `label_entropy`: the Shannon entropy of the labels of its k nearest neighbours over
  log k (0 = all share one label, 1 = all labels differ). A class of the dataset, and a
  wrongly labelled image too, sits among neighbours of one label; a group of look-alike
  anomalies larger than k (scanned pages filed under random labels) sits among
  neighbours of unrelated labels, however dense it is.

score = the largest weighted z-score, plus analyze.outlier_label_entropy_weight x
label_entropy, plus analyze.outlier_pixel_z when the pixel evidence fired (chosen by
measurement, BENCHMARKS.md); `reason` names the evidence that weighed most. Ranks come from sparkdup.findings.ranking
(no single-partition window).
"""
from __future__ import annotations

import math

from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from sparkdup.findings.ranking import add_rank
from sparkdup.findings.vectors import cosine
from sparkdup.graph import degrees

MAD_SCALE = 1.4826  # MAD of a normal distribution -> its standard deviation
EPS = 1e-3  # distance floor: byte-identical neighbours are at distance 0



def neighbour_distances(neighbors: DataFrame, k: int) -> DataFrame:
    """The k nearest neighbours of each image as (src, dst, dist = 1 - cosine), hash links
    included (a byte-identical copy is a neighbour at distance 0)."""
    nearest = Window.partitionBy("src").orderBy(F.col("similarity").desc(), F.col("dst"))
    return (neighbors.withColumn("_r", F.row_number().over(nearest)).where(F.col("_r") <= k)
            .select("src", "dst", F.greatest(F.lit(0.0), 1.0 - F.col("similarity")).alias("dist")))


def knn_scores(nd: DataFrame) -> DataFrame:
    """Per image: k-th neighbour distance and local outlier factor over its k nearest
    (nd = neighbour_distances(neighbors, k)).

    lrd(p) = 1 / mean_o reach(p, o), reach(p, o) = max(kdist(o), d(p, o));
    lof(p) = mean_o lrd(o) / lrd(p). Two joins on the neighbour table, no collect."""
    kdist = nd.groupBy(F.col("src").alias("image_id")).agg(
        F.max("dist").alias("knn_distance"), F.count(F.lit(1)).alias("k"))
    reach = (nd.join(kdist.select(F.col("image_id").alias("dst"), F.col("knn_distance").alias("kd_o")), "dst")
             .withColumn("reach", F.greatest("dist", "kd_o")))
    lrd = reach.groupBy(F.col("src").alias("image_id")).agg((1.0 / (F.avg("reach") + EPS)).alias("lrd"))
    lof = (nd.join(lrd.select(F.col("image_id").alias("dst"), F.col("lrd").alias("lrd_o")), "dst")
           .groupBy(F.col("src").alias("image_id")).agg(F.avg("lrd_o").alias("lrd_neighbours"))
           .join(lrd, "image_id").select("image_id", (F.col("lrd_neighbours") / F.col("lrd")).alias("lof")))
    return kdist.join(lof, "image_id", "left")


def label_distances(images: DataFrame, embeddings: DataFrame, min_members: int) -> DataFrame:
    """Per labelled image: cosine distance to its label's mean embedding, and that distance
    as a robust z-score among its label's members (labels with fewer than min_members get
    null: too few to say what is usual). Centroids: one MLlib Summarizer aggregate."""
    lab = (embeddings.join(images.where(F.col("label").isNotNull()).select("image_id", "label"), "image_id")
           .select("image_id", "label", "embedding"))
    centroids = (lab.groupBy("label").agg(Summarizer.mean(array_to_vector("embedding")).alias("c"),
                                          F.count(F.lit(1)).alias("members"))
                 .where(F.col("members") >= min_members)
                 .select("label", vector_to_array("c", "float32").alias("c")))
    c = F.col("c")
    norm = F.sqrt(F.aggregate(F.transform(c, lambda x: x * x), F.lit(0.0).cast("double"), lambda a, v: a + v))
    d = (lab.join(F.broadcast(centroids), "label")
         .select("image_id", "label", (1.0 - cosine(F.col("embedding"), c) / (norm + 1e-12)).alias("label_distance")))
    stats = d.groupBy("label").agg(F.percentile_approx("label_distance", 0.5).alias("med"))
    mad = (d.join(stats, "label").groupBy("label")
           .agg(F.first("med").alias("med"), F.percentile_approx(F.abs(F.col("label_distance") - F.col("med")), 0.5)
                .alias("mad")))
    return (d.join(F.broadcast(mad), "label")
            .select("image_id", "label_distance",
                    ((F.col("label_distance") - F.col("med")) / (MAD_SCALE * F.col("mad") + EPS)).alias("z_label")))


def neighbour_label_entropy(nearest: DataFrame, images: DataFrame, k: int) -> DataFrame:
    """Per image with labelled neighbours: (image_id, label_entropy) = H(labels of its
    nearest) / log k, H = log m - sum_l n_l log n_l / m over the m labelled ones among
    them (unlabelled neighbours do not count; k = 1 gives 0)."""
    labels = images.where(F.col("label").isNotNull()).select(F.col("image_id").alias("dst"), "label")
    counts = nearest.join(labels, "dst").groupBy("src", "label").agg(F.count(F.lit(1)).alias("n"))
    h = (F.log(F.col("m")) - F.col("nlogn") / F.col("m")) / F.lit(math.log(k) if k > 1 else 1.0)
    return (counts.groupBy(F.col("src").alias("image_id"))
            .agg(F.sum("n").alias("m"), F.sum(F.col("n") * F.log("n")).alias("nlogn"))
            .select("image_id", F.greatest(F.lit(0.0), h).alias("label_entropy")))


def pixel_evidence(images: DataFrame) -> DataFrame:
    """Per ok image: contrast, entropy, low_information and noise_ratio (Laplacian variance
    over 20 x luminance variance: about 1 for uniform pixel noise, JPEG-compressed too,
    at most 0.42 over 726 real drawings, icons and photos; see BENCHMARKS.md)."""
    contrast = F.coalesce(F.col("contrast"), F.lit(0.0))
    ratio = F.coalesce(F.col("blur"), F.lit(0.0)) / (20.0 * contrast * contrast + 1.0)
    return images.where(F.col("status") == "ok").select(
        "image_id", "contrast", "entropy",
        F.array_contains(F.coalesce("flags", F.array().cast("array<string>")), "low_information").alias("low_information"),
        ratio.alias("noise_ratio"))


def robust_z(df: DataFrame, columns: dict[str, str], relative_error: float) -> DataFrame:
    """Add z_<name> = (col - median) / (1.4826 MAD) for each name -> column, the medians from
    two approxQuantile passes (one for the medians, one for the absolute deviations)."""
    names = list(columns)
    meds = df.approxQuantile([columns[n] for n in names], [0.5], relative_error)
    med = {n: (m[0] if m else 0.0) for n, m in zip(names, meds)}
    devs = df.select(*[F.abs(F.col(columns[n]) - F.lit(med[n])).alias(n) for n in names])
    mads = devs.approxQuantile(names, [0.5], relative_error)
    mad = {n: (m[0] if m else 0.0) for n, m in zip(names, mads)}
    for n in names:
        df = df.withColumn(f"z_{n}", F.coalesce((F.col(columns[n]) - F.lit(med[n])) / F.lit(MAD_SCALE * mad[n] + EPS),
                                                F.lit(0.0)))
    return df


def _reason(best: Column) -> Column:
    f2 = lambda c: F.format_number(F.col(c), 2)  # noqa: E731
    return (F.when(best == "blank", F.concat(F.lit("blank: luminance contrast "), f2("contrast")))
            .when(best == "noise", F.concat(F.lit("noise-like pixels: Laplacian/variance ratio "), f2("noise_ratio")))
            .when(best == "lof", F.concat(F.lit("sparser than its neighbours: LOF "), f2("lof")))
            .when(best == "entropy", F.concat(F.lit("among unrelated labels: its neighbours' label entropy "),
                                              f2("label_entropy")))
            .when(best == "label", F.concat(F.lit("unlike the rest of label '"), F.col("label"), F.lit("': distance "),
                                            f2("label_distance"), F.lit(" to its centre")))
            .otherwise(F.concat(F.lit("far from all: neighbour "), F.col("k").cast("string"), F.lit(" at distance "),
                                f2("knn_distance"))))


def outliers(images: DataFrame, neighbors: DataFrame, embeddings: DataFrame, an: dict) -> DataFrame:
    """How unusual each embedded image is (see the module doc). Rank 1 is the most unusual;
    `is_outlier` marks the top `outlier_fraction`."""
    knn = neighbors.where(F.col("source") != "hash")
    per_image = knn.groupBy(F.col("src").alias("image_id")).agg(
        F.avg("similarity").alias("mean_similarity"), F.max("similarity").alias("nn_similarity"))
    in_degree = knn.groupBy(F.col("dst").alias("image_id")).agg(F.count(F.lit(1)).alias("in_degree"))
    graph_degree = degrees(knn.select("src", "dst")).select(F.col("id").alias("image_id"), F.col("degree"))
    k = int(an["outlier_k"])
    nearest = neighbour_distances(neighbors, k)
    scored = (knn_scores(nearest)
              .join(neighbour_label_entropy(nearest, images, k), "image_id", "left")
              .join(per_image, "image_id", "left").join(in_degree, "image_id", "left")
              .join(graph_degree, "image_id", "left").fillna(0, ["in_degree", "degree"])
              .join(pixel_evidence(images), "image_id", "left")
              .join(label_distances(images, embeddings, int(an["outlier_label_min_members"])), "image_id", "left")
              .join(images.select("image_id", "path", "label", "split"), "image_id")
              .withColumn("_log_lof", F.log(F.col("lof") + EPS))
              .checkpoint(eager=True))  # read by the quantile, rank and write passes below
    scored = robust_z(scored, {"knn": "knn_distance", "lof": "_log_lof"}, float(an["outlier_quantile_error"]))
    # the embedding evidence: the largest weighted z-score an image has (a missing one,
    # e.g. no label, does not count)
    parts = {"knn": (F.col("z_knn"), 1.0), "lof": (F.col("z_lof"), float(an["outlier_lof_weight"])),
             "label": (F.col("z_label"), float(an["outlier_label_weight"]))}
    blank = F.coalesce(F.col("contrast") <= float(an["blank_max_contrast"]), F.lit(False))
    noise = F.coalesce(F.col("noise_ratio") >= float(an["noise_min_ratio"]), F.lit(False))
    pixel = F.when(blank | noise, F.lit(float(an["outlier_pixel_z"]))).otherwise(F.lit(0.0))
    best = F.greatest(*[F.struct(F.coalesce(z * w, F.lit(-1e9)).alias("z"), F.lit(name).alias("name"))
                        for name, (z, w) in parts.items() if w > 0])
    mixed = F.lit(float(an["outlier_label_entropy_weight"])) * F.coalesce(F.col("label_entropy"), F.lit(0.0))
    # reason: the pixel evidence when it fired, else the part that weighed most
    why = (F.when(blank, F.lit("blank")).when(noise, F.lit("noise"))
           .when(mixed > best["z"], F.lit("entropy")).otherwise(best["name"]))
    scored = scored.withColumn("score", F.round(best["z"] + mixed + pixel, 6)).withColumn("reason", _reason(why))
    n = scored.count()
    cut = max(1, int(round(an["outlier_fraction"] * n))) if n else 0
    ranked = add_rank(scored, "score", "image_id", total=n)
    return ranked.select(
        "image_id", "path", "score", "rank", "percentile", (F.col("rank") <= cut).alias("is_outlier"), "reason",
        F.round("knn_distance", 6).alias("knn_distance"), F.round("lof", 6).alias("lof"),
        F.round("label_distance", 6).alias("label_distance"), F.round("z_label", 6).alias("label_z"),
        F.round("label_entropy", 6).alias("label_entropy"),
        "contrast", "entropy", F.round("noise_ratio", 6).alias("noise_ratio"), "low_information",
        "nn_similarity", "mean_similarity", "in_degree", "degree", "label", "split")

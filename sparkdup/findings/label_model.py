"""Out-of-sample class probabilities for every labelled image, from Spark MLlib.

Confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70, 2021) needs, for each image, the probabilities of
every class from a model that never saw that image: K-fold cross-fitting. Each image gets a
fold from a hash of its duplicate group (or of itself when it has none), so near copies of
an image are never in the training folds of the model that scores it.

What it costs is the number of L-BFGS iterations (one Spark job each, about 0.1 CPU s of
fixed cost on two cores) times rows × dimensions × classes per iteration (at 1280
dimensions and 118 classes, 4 CPU s per iteration for 8,000 images), so:

1. the embeddings are projected once onto their first `label_pca_dim` principal axes: the
   mean, deviations and correlations of a sample come from MLlib on executors, the d × d
   covariance is eigendecomposed on the driver (numpy, 0.3 s at d = 1280; MLlib's PCA
   runs a full SVD of it in the JVM) and the projection is a pandas UDF; the compact
   features are kept for the K fits and scorings;
2. model k is a multinomial LogisticRegression fitted on the other folds' compact
   features and applied to fold k, for at most label_max_iter iterations. Each image
   weighs (mean class size / its class's size) ** label_class_balance in the loss: the
   classes 10x smaller than others are otherwise underfitted (out-of-sample accuracy 0.65
   unweighted, 0.69 at exponent 0.5 on the 8,119-file set, 118 labels). (One fit of
   all K models stacked in blocks of one sparse feature vector needs K times fewer
   Spark jobs, but MLlib's sparse-block gradient cost 3x the CPU at 8,000 images.)

Fitting and scoring run on executors; the driver sees the class list, the covariance and
the fitted coefficients.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Correlation, Summarizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from sparkdup.udfs.buckets import as_matrix
from sparkdup.udfs.project import project

log = logging.getLogger("sparkdup")

# Training rows per partition: enough parallel work at scale, one partition for small sets.
ROWS_PER_TRAINING_PARTITION = 50_000


def class_weights(sizes: list[int], power: float) -> list[float]:
    """Training weight of one image of each class: (mean size / class size) ** power.
    0 = every image counts once (large classes dominate the fit); 1 = every class weighs
    the same in the loss (King and Zeng's prior correction, the weights of sklearn's
    'balanced'); in between, a class 10x smaller weighs 10**power x more per image. MLlib
    divides the loss by the sum of the weights, so label_reg keeps its meaning."""
    mean = sum(sizes) / len(sizes)
    return [(mean / n) ** power for n in sizes]


def class_index(labelled: DataFrame, min_members: int, balance: float
                ) -> tuple[DataFrame, list[str], dict[str, int]]:
    """Classes a model can learn (at least min_members images), indexed 0..C-1 by name:
    a small DataFrame (label, idx, weight: class_weights with exponent `balance`), the
    names in index order and every label's member count."""
    counts = {r["label"]: int(r["count"]) for r in labelled.groupBy("label").count().collect()}
    names = sorted(lab for lab, n in counts.items() if n >= min_members)
    weights = class_weights([counts[lab] for lab in names], balance) if names else []
    spark = labelled.sparkSession
    index = spark.createDataFrame([(lab, i, w) for i, (lab, w) in enumerate(zip(names, weights))],
                                  "label string, idx int, weight double")
    return index, names, counts


def folds(labelled: DataFrame, groups: DataFrame, k: int, seed: int) -> DataFrame:
    """labelled with `fold` (0..k-1), shared by the members of a duplicate group."""
    member = groups.select("image_id", "group_id").dropDuplicates(["image_id"])
    key = F.coalesce(F.col("group_id"), F.col("image_id"))
    return (labelled.join(member, "image_id", "left")
            .withColumn("fold", F.pmod(F.xxhash64(key, F.lit(seed)), F.lit(k)).cast("int")).drop("group_id"))


def principal_axes(rows: DataFrame, n_rows: int, dim: int, sample_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the first `dim` principal axes (d × dim, by decreasing variance) of the
    `embedding` column, from at most about sample_rows rows picked by a hash of image_id
    (the same rows whatever the partitioning). Mean, deviations and correlations come from
    MLlib on executors; the d × d covariance is eigendecomposed on the driver."""
    sample = rows.select("image_id", array_to_vector("embedding").alias("v"))
    if n_rows > sample_rows:
        keep = F.pmod(F.xxhash64("image_id", F.lit(seed + 1)), F.lit(1_000_000)) < F.lit(int(1e6 * sample_rows / n_rows))
        sample = sample.where(keep)
    sample = sample.select("v").persist(StorageLevel.MEMORY_AND_DISK)
    stats = sample.select(Summarizer.metrics("mean", "std").summary(F.col("v")).alias("s")).first()["s"]
    mean, std = stats["mean"].toArray(), stats["std"].toArray()
    corr = Correlation.corr(sample, "v").first()[0].toArray()  # NaN for constant dimensions
    sample.unpersist()
    values, vectors = np.linalg.eigh(np.nan_to_num(corr) * np.outer(std, std))
    order = np.argsort(values)[::-1][:dim]
    return mean, vectors[:, order]


def _projected(mean: np.ndarray, axes: np.ndarray) -> Column:
    @pandas_udf("array<float>")
    def proj(batch: pd.Series) -> pd.Series:
        return pd.Series(list(project(as_matrix(batch), mean, axes)))
    return proj(F.col("embedding"))


def cross_fitted_probabilities(labelled: DataFrame, n_rows: int, index: DataFrame, n_classes: int, an: dict
                               ) -> DataFrame:
    """(image_id, probs): probs[j] = P(class j | embedding) from the model of the other
    folds, an array of n_classes doubles (a class missing from a fold's training data gets
    0). labelled has image_id, label, embedding, fold; every row is scored, also those of
    labels too small to be classes; n_rows is its row count. Checkpointed."""
    k, n = int(an["label_folds"]), n_rows
    dim = int(an["label_pca_dim"])
    rows = labelled.join(F.broadcast(index), "label", "left")
    if dim > 0:
        mean, axes = principal_axes(rows, n, dim, int(an["label_pca_sample"]), int(an["label_seed"]))
        x = _projected(mean, axes)
    else:
        x = F.col("embedding")
    # The same rows in the same partitions in the same order, whatever the input's partitioning
    # (local mode, a cluster, another shuffle setting): MLlib sums gradients per partition, so
    # only then do the fits, and the borderline label issues, come out the same everywhere.
    n_parts = max(1, math.ceil(n / ROWS_PER_TRAINING_PARTITION))
    data = (rows.select("image_id", "fold", F.col("idx").cast("double").alias("idx"), "weight",
                        array_to_vector(x).alias("features"))
            .repartition(n_parts, "image_id").sortWithinPartitions("image_id")
            .persist(StorageLevel.MEMORY_AND_DISK))  # the K fits and scorings read it
    lr = LogisticRegression(featuresCol="features", labelCol="idx", weightCol="weight", family="multinomial",
                            regParam=float(an["label_reg"]), elasticNetParam=0.0,
                            maxIter=int(an["label_max_iter"]), tol=float(an["label_tol"]),
                            standardization=bool(an["label_standardize"]))
    parts, iterations = [], []
    for f in range(k):
        model = lr.fit(data.where((F.col("fold") != f) & F.col("idx").isNotNull()))
        iterations.append(model.summary.totalIterations)
        scored = model.transform(data.where(F.col("fold") == f)).select("image_id", vector_to_array("probability").alias("p"))
        pad = n_classes - model.numClasses  # classes above the fold's largest index
        parts.append(scored.select("image_id", (F.concat("p", F.array_repeat(F.lit(0.0), F.lit(pad))) if pad > 0
                                                else F.col("p")).alias("probs")))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    out = out.checkpoint(eager=True)
    data.unpersist()
    log.info("analyze: label model: %d folds, %d classes, %s features, L-BFGS iterations %s",
             k, n_classes, dim or "all embedding", iterations)
    return out


def model_probabilities(images: DataFrame, embeddings: DataFrame, groups: DataFrame, an: dict
                        ) -> tuple[DataFrame | None, list[str], dict[str, int]]:
    """(image_id, label, probs) for every labelled ok image, the class names (probs order)
    and the member count of each label. (None, [], counts) when no model can be fitted:
    no labels at all, or fewer than two classes; said in one log line."""
    labelled = (images.where(F.col("label").isNotNull()).select("image_id", "label")
                .join(embeddings.select("image_id", "embedding"), "image_id"))
    index, names, counts = class_index(labelled, int(an["label_min_class_size"]), float(an["label_class_balance"]))
    if len(names) < 2:
        log.info("analyze: label model skipped: %s", "no labelled images" if not counts else
                 f"{len(names)} label(s) with at least {an['label_min_class_size']} images; a classifier needs two")
        return None, names, counts
    with_folds = folds(labelled, groups, int(an["label_folds"]), int(an["label_seed"]))
    probs = cross_fitted_probabilities(with_folds, sum(counts.values()), index, len(names), an)
    return probs.join(labelled.select("image_id", "label"), "image_id"), names, counts

"""Out-of-sample class probabilities for every labelled image, from Spark MLlib.

Confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70, 2021) needs, for each image, the probabilities of
every class from a model that never saw that image: K-fold cross-fitting. Each image gets a
fold from a hash of its duplicate group (or of itself when it has none), so near copies of
an image are never in the training folds of the model that scores it.

What it costs is the number of L-BFGS iterations (one Spark job each, ~0.2 CPU s of fixed
cost on two cores) times rows × dimensions × classes per iteration, so:

1. the embeddings are projected once onto their first `label_pca_dim` principal axes (the
   covariance of a sample comes from MLlib on executors, a d × d matrix to the driver,
   eigendecomposed there; MLlib's own PCA runs a full SVD of it in the JVM, 9-15 CPU s at
   d = 1280) and the compact features are kept for the fit and the scoring;
2. the K models are one MLlib multinomial LogisticRegression: each training row is
   repeated once per model that may see it (K - 1 times), its features placed in that
   model's block of a K × (dim + 1) vector (the + 1 is the model's own intercept), so the
   objective is the sum of the K folds' objectives and one L-BFGS run fits all K at the
   cost in Spark jobs of one. An image is scored with its features in its own fold's
   block: only the model that never saw it contributes.

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

from udfs.project import project, stack_column

log = logging.getLogger("sparkdup")

# Training rows per partition: enough parallel work at scale, one partition for small sets.
ROWS_PER_TRAINING_PARTITION = 50_000


def class_index(labelled: DataFrame, min_members: int) -> tuple[DataFrame, dict[str, int]]:
    """Classes a model can learn (at least min_members images), indexed 0..C-1 by name,
    as a small DataFrame (label, idx) and every label's member count."""
    counts = {r["label"]: int(r["count"]) for r in labelled.groupBy("label").count().collect()}
    names = sorted(lab for lab, n in counts.items() if n >= min_members)
    spark = labelled.sparkSession
    index = spark.createDataFrame([(lab, i) for i, lab in enumerate(names)], "label string, idx int")
    return index, counts


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
        return pd.Series(list(project(stack_column(batch), mean, axes)))
    return proj(F.col("embedding"))


def _in_block(x: str, block: Column, k: int, width: int) -> Column:
    """The array column x placed in block `block` of k blocks of `width`, zeros elsewhere."""
    zeros = F.array_repeat(F.lit(0.0), width)
    return array_to_vector(F.flatten(F.transform(F.sequence(F.lit(0), F.lit(k - 1)),
                                                 lambda b: F.when(b == block, F.col(x)).otherwise(zeros))))


def cross_fitted_probabilities(labelled: DataFrame, index: DataFrame, n_classes: int, an: dict) -> DataFrame:
    """(image_id, probs): probs[j] = P(class j | embedding) from the model of the other
    folds, an array of n_classes doubles. labelled has image_id, label, embedding, fold;
    every row is scored, also those of labels too small to be classes. Checkpointed."""
    k = int(an["label_folds"])
    n = labelled.count()
    dim = int(an["label_pca_dim"])
    width = len(labelled.select("embedding").first()[0])
    rows = labelled.join(F.broadcast(index), "label", "left")
    if 0 < dim < width:
        mean, axes = principal_axes(rows, n, dim, int(an["label_pca_sample"]), int(an["label_seed"]))
        x, width = _projected(mean, axes), dim
    else:
        x = F.col("embedding")
    # The same rows in the same partitions in the same order, whatever the input's partitioning
    # (local mode, a cluster, another shuffle setting): MLlib sums gradients per partition, so
    # only then do the fits, and the borderline label issues, come out the same everywhere.
    n_parts = max(1, math.ceil(n / ROWS_PER_TRAINING_PARTITION))
    compact = (rows.select("image_id", "fold", F.col("idx").cast("double").alias("idx"),
                           F.concat(x.cast("array<double>"), F.array(F.lit(1.0))).alias("x"))
               .repartition(n_parts, "image_id").sortWithinPartitions("image_id")
               .persist(StorageLevel.MEMORY_AND_DISK))  # the fit and the scoring read it
    others = F.filter(F.sequence(F.lit(0), F.lit(k - 1)), lambda b: b != F.col("fold"))
    train = (compact.where(F.col("idx").isNotNull()).withColumn("block", F.explode(others))
             .select("idx", _in_block("x", F.col("block"), k, width + 1).alias("features")))
    # The stacked objective weighs fold f's loss by its share (about 1/K) of the stacked
    # rows, so regParam / K puts each fold's own penalty at label_reg.
    lr = LogisticRegression(featuresCol="features", labelCol="idx", family="multinomial", fitIntercept=False,
                            regParam=float(an["label_reg"]) / k, elasticNetParam=0.0,
                            maxIter=int(an["label_max_iter"]), tol=float(an["label_tol"]),
                            standardization=bool(an["label_standardize"]))
    model = lr.fit(train)
    log.info("analyze: label model: %d folds, %d classes, %d features, %d L-BFGS iterations",
             k, n_classes, width, model.summary.totalIterations)
    scored = model.transform(compact.select("image_id", _in_block("x", F.col("fold"), k, width + 1).alias("features")))
    out = scored.select("image_id", vector_to_array("probability").alias("probs")).checkpoint(eager=True)
    compact.unpersist()
    return out


def model_probabilities(images: DataFrame, embeddings: DataFrame, groups: DataFrame, an: dict
                        ) -> tuple[DataFrame | None, list[str], dict[str, int]]:
    """(image_id, label, probs) for every labelled ok image, the class names (probs order)
    and the member count of each label. (None, [], counts) when no model can be fitted:
    no labels at all, or fewer than two classes; said in one log line."""
    labelled = (images.where(F.col("label").isNotNull()).select("image_id", "label")
                .join(embeddings.select("image_id", "embedding"), "image_id"))
    index, counts = class_index(labelled, int(an["label_min_class_size"]))
    names = [r["label"] for r in index.orderBy("idx").collect()]
    if len(names) < 2:
        log.info("analyze: label model skipped: %s", "no labelled images" if not counts else
                 f"{len(names)} label(s) with at least {an['label_min_class_size']} images; a classifier needs two")
        return None, names, counts
    with_folds = folds(labelled, groups, int(an["label_folds"]), int(an["label_seed"]))
    probs = cross_fitted_probabilities(with_folds, index, len(names), an)
    return probs.join(labelled.select("image_id", "label"), "image_id"), names, counts

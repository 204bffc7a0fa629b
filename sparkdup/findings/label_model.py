"""Out-of-sample class probabilities for every labelled image, from Spark MLlib.

Confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70, 2021) needs, for each image, the probabilities of
every class from a model that never saw that image: K-fold cross-fitting. Each image gets a
fold from a hash of its duplicate group (or of itself when it has none), so near copies of
an image are never in the training fold that scores it; model k is a multinomial
LogisticRegression fitted on the other folds and applied to fold k. Fitting and scoring run
on executors; the driver only sees the class list and the fitted coefficients.
"""
from __future__ import annotations

import logging
import math

from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

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


def cross_fitted_probabilities(labelled: DataFrame, index: DataFrame, n_classes: int, an: dict) -> DataFrame:
    """(image_id, probs): probs[j] = P(class j | embedding) from the model of the other
    folds, an array of n_classes doubles (a class missing from a fold's training data gets
    0). labelled has image_id, label, embedding, fold; every row is scored, also those of
    labels too small to be classes."""
    k = int(an["label_folds"])
    # The same rows in the same partitions in the same order, whatever the input's partitioning
    # (local mode, a cluster, another shuffle setting): MLlib sums gradients per partition, so
    # only then do the fits, and the borderline label issues, come out the same everywhere.
    n_parts = max(1, math.ceil(labelled.count() / ROWS_PER_TRAINING_PARTITION))
    data = (labelled.join(F.broadcast(index), "label", "left")
            .select("image_id", "fold", F.col("idx").cast("double").alias("idx"),
                    array_to_vector("embedding").alias("features"))
            .repartition(n_parts, "image_id").sortWithinPartitions("image_id")
            .checkpoint(eager=True))  # the K fits and scorings read it
    lr = LogisticRegression(featuresCol="features", labelCol="idx", family="multinomial",
                            regParam=float(an["label_reg"]), elasticNetParam=0.0,
                            maxIter=int(an["label_max_iter"]), standardization=bool(an["label_standardize"]))
    parts = []
    for f in range(k):
        train = data.where((F.col("fold") != f) & F.col("idx").isNotNull())
        model = lr.fit(train)
        scored = model.transform(data.where(F.col("fold") == f)).select("image_id", vector_to_array("probability").alias("p"))
        pad = n_classes - model.numClasses  # classes above the fold's largest index
        parts.append(scored.select("image_id", (F.concat("p", F.array_repeat(F.lit(0.0), F.lit(pad))) if pad > 0
                                                else F.col("p")).alias("probs")))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
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

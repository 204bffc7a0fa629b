"""Exact global ranks and percentiles without moving a table into one partition.

A window ordered over a whole table (`Window.orderBy(...)` with no partition) makes Spark
gather every row in one task: it cannot run at 100M images. Instead:

1. approximate quantiles of the score (`approxQuantile`, one pass, a few numbers to the
   driver) cut the score range into buckets of about `rows_per_bucket` rows;
2. one aggregate counts the rows of each bucket (one number per bucket to the driver),
   which gives each bucket's offset: the rows in the buckets of higher scores;
3. a window *partitioned by bucket* numbers the rows inside each bucket, in parallel.

Bucket boundaries are constants once chosen, so a bucket is a pure function of the score:
every row of a better bucket has a strictly better score, and rank = offset + position is
exact (ties broken by the tie column), whatever the quantiles' approximation error (it
only makes buckets uneven).
"""
from __future__ import annotations

import math

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

_BUCKET = "_rank_bucket"


def add_rank(df: DataFrame, score: str, tie: str, descending: bool = True,
             rows_per_bucket: int = 100_000, total: int | None = None) -> DataFrame:
    """df with `rank` (1 = highest score when descending, else lowest; int) and
    `percentile` (100 = rank 1, double). `score` must not be null; `tie` (unique per row)
    orders equal scores. Reads df three times (count, quantiles, bucket counts): pass a
    checkpointed or cheap frame. `total` (rows) is used when the caller already knows it."""
    n = df.count() if total is None else total
    if n == 0:
        return df.withColumn("rank", F.lit(None).cast("int")).withColumn("percentile", F.lit(None).cast("double"))
    # at least two buckets: a constant bucket would be folded away by the optimizer and
    # leave exactly the unpartitioned window this module avoids
    buckets = max(2, math.ceil(n / rows_per_bucket))
    probs = [i / buckets for i in range(1, buckets)]
    bounds = sorted(set(df.approxQuantile(score, probs, 1.0 / (4 * buckets))))
    s = F.col(score)
    # position of the score among the bounds; in descending order the best bucket is 0
    above = F.size(F.filter(F.array(*[F.lit(float(b)) for b in bounds]).cast("array<double>"), lambda b: b < s))
    bucket = (F.lit(len(bounds)) - above) if descending else above
    with_bucket = df.withColumn(_BUCKET, bucket.cast("int"))
    counts = dict(with_bucket.groupBy(_BUCKET).count().collect())
    offsets, seen = [], 0
    for b in range(len(bounds) + 1):
        offsets.append(seen)
        seen += counts.get(b, 0)
    order = (s.desc() if descending else s.asc(), F.col(tie).asc())
    within = F.row_number().over(Window.partitionBy(_BUCKET).orderBy(*order))
    offset = F.element_at(F.array(*[F.lit(o) for o in offsets]), F.col(_BUCKET) + 1)
    rank = (offset + within).cast("int")
    return (with_bucket.withColumn("rank", rank)
            .withColumn("percentile", F.round(100.0 * (1.0 - (F.col("rank") - 1) / F.lit(n)), 3))
            .drop(_BUCKET))

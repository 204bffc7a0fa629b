"""How many partitions a per-image stage runs in: a function of the number of images.

Spark's file scan packs small files into partitions by bytes (about
maxPartitionBytes / (file size + openCostInBytes): some 30 small images per partition),
which is right for cheap work but makes hundreds of tiny tasks for expensive per-image work
such as the embedding model. Stages that use this ask for
``max(defaultParallelism, ceil(images / spark.images_per_partition))`` partitions and get
there with ``coalesce``: partitions of the scan are merged without a shuffle, so image
bytes never cross the network. Coalescing only ever lowers the count; a scan that already
has fewer partitions keeps them (Spark's scan makes at least about one per core).
"""
from __future__ import annotations

import math

from pyspark.sql import DataFrame


def partitions_for(n_images: int, images_per_partition: int, minimum: int) -> int:
    """ceil(n_images / images_per_partition), at least `minimum` (the cluster's cores) and 1."""
    if images_per_partition < 1:
        raise ValueError(f"spark.images_per_partition must be at least 1, got {images_per_partition}")
    return max(1, int(minimum), math.ceil(max(0, n_images) / images_per_partition))


def by_image_count(df: DataFrame, n_images: int, images_per_partition: int) -> DataFrame:
    """df in at most partitions_for(...) partitions, merged without a shuffle."""
    minimum = df.sparkSession.sparkContext.defaultParallelism
    return df.coalesce(partitions_for(n_images, images_per_partition, minimum))

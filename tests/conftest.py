"""Shared fixtures: one local SparkSession for the whole test run, and real image samples."""
from __future__ import annotations

import glob
import os
import random

import pytest

OPENCLIPART = "/usr/share/openclipart/png"
OXYGEN = "/usr/share/icons/oxygen"


def real_pngs(root: str, n: int, seed: int = 0, min_bytes: int = 2000) -> list[str]:
    """A deterministic sample of real PNGs from a Debian image package."""
    files = sorted(glob.glob(os.path.join(root, "**", "*.png"), recursive=True))
    if not files:
        pytest.fail(f"no real images under {root}: run scripts/setup.sh (installs openclipart-png, oxygen-icon-theme)")
    files = [f for f in files if os.path.getsize(f) >= min_bytes]
    return random.Random(seed).sample(files, n)


@pytest.fixture(scope="session")
def spark():
    from sparkdup.config import load_config
    from sparkdup.session import get_spark

    cfg = load_config(overrides=["spark.master=local[2]", "spark.driver_memory=3g"])
    session = get_spark(cfg)
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def cfg():
    from sparkdup.config import load_config

    return load_config(overrides=["spark.master=local[2]"])

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

    # Quick JIT: the suite is many short runs, where C2's compiling costs more than it gives.
    cfg = load_config(overrides=["spark.master=local[2]", "spark.driver_memory=3g", "spark.quick_jit=true"])
    session = get_spark(cfg)
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def appended(spark, tmp_path_factory):
    """An output grown by `run --append` and a full run over the same files (tests/appendcase.py)."""
    from tests.appendcase import build

    return build(spark, tmp_path_factory.mktemp("append"))


@pytest.fixture(scope="session")
def cfg():
    from sparkdup.config import load_config

    return load_config(overrides=["spark.master=local[2]"])


@pytest.fixture(scope="session")
def pipeline_run(spark, tmp_path_factory):
    """`sparkdup run` once on a generated messy dataset: (output dir, ground truth, counts).

    Shared by the quality tests and the SQL-example tests, so the pipeline runs once.
    """
    import sparkdup
    from tools.groundtruth.generate import generate

    root = tmp_path_factory.mktemp("pipeline")
    # the generator's default classes for 100 pictures (9 classes of ~12, one of them 10x
    # smaller; look-alike sets of game sprites, icon themes, flags and rotated signs; sibling
    # classes for flipped labels), and one anomaly cluster of each type
    truth = generate(str(root / "data"), n_originals=100, seed=1, anomaly_clusters=4)
    out = str(root / "out")
    # Through the notebook API, on the test session: the CLI is a thin layer over it.
    result = sparkdup.run(str(root / "data" / "images"), out, spark=spark, run_id="test-run",
                          settings={"ingest.layout": "split/label", "output.database": "sparkdup_test"})
    return out, truth, result.counts


@pytest.fixture(scope="session")
def packaged(tmp_path_factory):
    """scripts/package.py run into a fresh folder: {'wheel', 'zip', 'main'} paths.

    Built by the tests themselves so they work from a clean clone (dist/ is not tracked)."""
    import importlib.util

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("sparkdup_package", os.path.join(here, "scripts", "package.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.package(str(tmp_path_factory.mktemp("dist")))


@pytest.fixture(scope="session")
def python_without_sparkdup(tmp_path_factory):
    """An interpreter with every third-party package of this venv but not sparkdup.

    The venv has sparkdup installed in editable mode, so its python would import sparkdup
    from the checkout whatever Spark ships. This one is a bare venv whose only addition
    is a .pth line naming the venv's site-packages folder: a plain path entry, whose own
    .pth files (the editable install's finder among them) are never run. So it imports
    sparkdup only from what is put on its path, e.g. a --py-files zip."""
    import site
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("python_without_sparkdup")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    (site_dir,) = glob.glob(str(root / "lib" / "python*" / "site-packages"))
    deps = [p for p in site.getsitepackages() if p.startswith(sys.prefix)]
    with open(os.path.join(site_dir, "sparkdup_test_deps.pth"), "w") as f:
        f.write("\n".join(deps) + "\n")
    python = str(root / "bin" / "python")
    probe = subprocess.run([python, "-c", "import pyspark, numpy, sparkdup"], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, cwd=str(root))
    assert "No module named 'sparkdup'" in probe.stderr, probe.stderr
    return python

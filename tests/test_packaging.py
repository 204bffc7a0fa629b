"""scripts/package.py: the wheel and the --py-files zip hold sparkdup as setup.py maps it,
and the zip alone (with the third-party packages installed) runs the command."""
from __future__ import annotations

import glob
import os
import subprocess
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Source folder -> package inside the zip, as setup.py's package_dir says.
MAPPING = {"sparkdup": "sparkdup", "jobs": "sparkdup/jobs", "udfs": "sparkdup/udfs", "conf": "sparkdup/conf",
           "sparkdup/models": "sparkdup/models", "sparkdup/findings": "sparkdup/findings"}


def _expected() -> set[str]:
    names = set()
    for folder, package in MAPPING.items():
        for path in [p for pattern in ("*.py", "*.yaml", "*.properties")  # code and its package data
                     for p in glob.glob(os.path.join(REPO, folder, pattern))]:
            names.add(f"{package}/{os.path.basename(path)}")
    return names


def _env_without_pythonpath(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_GATEWAY_PORT")}
    env.update(extra)
    return env


def test_zip_holds_every_module_and_settings_file(packaged):
    with zipfile.ZipFile(packaged["zip"]) as zf:
        names = set(zf.namelist())
    missing = _expected() - names
    assert not missing, f"not in the --py-files zip: {sorted(missing)}"
    assert not [n for n in names if "__pycache__" in n or ".dist-info" in n or n.endswith(".pyc")]
    assert {n.split("/")[0] for n in names} == {"sparkdup"}, "the zip must carry sparkdup only"


def test_wheel_lists_only_what_a_cluster_runs(packaged):
    """The wheel holds the runtime packages and nothing else: no evaluation tools
    (tools/groundtruth needs Debian image folders and scikit-image), no tests, benchmarks
    or scripts."""
    with zipfile.ZipFile(packaged["wheel"]) as whl:
        names = whl.namelist()
    files = [n for n in names if not n.split("/")[0].endswith(".dist-info")]
    folders = {os.path.dirname(n) for n in files}
    assert folders == set(MAPPING.values()), sorted(folders)
    assert set(files) == _expected(), sorted(set(files) ^ _expected())
    assert not [n for n in names if "groundtruth" in n or n.startswith(("tools/", "tests/", "benchmarks/", "scripts/"))]
    assert all(n.endswith((".py", ".yaml", ".properties")) for n in files), \
        [n for n in files if not n.endswith((".py", ".yaml", ".properties"))]


def test_wheel_matches_zip_and_declares_the_command(packaged):
    with zipfile.ZipFile(packaged["wheel"]) as whl, zipfile.ZipFile(packaged["zip"]) as zf:
        wheel_names = whl.namelist()
        package_files = {n for n in wheel_names if not n.split("/")[0].endswith(".dist-info")}
        assert package_files == set(zf.namelist())
        (entry_points,) = [n for n in wheel_names if n.endswith(".dist-info/entry_points.txt")]
        assert "sparkdup = sparkdup.cli:main" in whl.read(entry_points).decode()


def test_zip_alone_imports_loads_settings_and_runs_the_command(packaged, python_without_sparkdup, tmp_path):
    """With only the zip on the path: every profile loads from inside it, and the
    spark-submit entry script answers --help for the run stage."""
    code = (
        "import sparkdup, sparkdup.jobs.run, sparkdup.udfs.embed, sparkdup.models.shipping\n"
        "from sparkdup.config import load_config\n"
        "print(sparkdup.__file__)\n"
        "for p in (None, 'local', 'databricks', 'emr'):\n"
        "    c = load_config(p)\n"
        "    print(p, c['spark']['checkpoint_dir'], c['neighbors']['index_dir'])\n"
    )
    env = _env_without_pythonpath(PYTHONPATH=packaged["zip"])
    out = subprocess.run([python_without_sparkdup, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == os.path.join(packaged["zip"], "sparkdup", "__init__.py")
    profiles = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert profiles["None"] == profiles["local"] == ["None", "None"]
    assert profiles["databricks"] == ["None", "/local_disk0/tmp/sparkdup-neighbors"]  # checkpoints: <output>
    assert profiles["emr"] == ["hdfs:///tmp/sparkdup/checkpoints", "/mnt/tmp/sparkdup-neighbors"]

    usage = subprocess.run([python_without_sparkdup, packaged["main"], "run", "--help"], capture_output=True,
                           text=True, env=env, cwd=tmp_path)
    assert usage.returncode == 0, usage.stderr
    assert "--output" in usage.stdout and "--layout" in usage.stdout


def test_without_the_zip_sparkdup_is_not_importable(python_without_sparkdup, packaged, tmp_path):
    """The interpreter the cluster test gives Spark really depends on the zip."""
    out = subprocess.run([python_without_sparkdup, packaged["main"], "run", "--help"], capture_output=True,
                         text=True, env=_env_without_pythonpath(), cwd=tmp_path)
    assert out.returncode != 0 and "No module named 'sparkdup'" in out.stderr

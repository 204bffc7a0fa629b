"""The HTML report: self-contained, escaped, thumbnails of the findings."""
from __future__ import annotations

import argparse
import os
import re
import shutil

from conftest import OPENCLIPART, real_pngs
from sparkdup.config import load_config
from sparkdup.jobs import report
from sparkdup.jobs import run as pipeline
from sparkdup.report_html import histogram_svg


def test_report_from_a_real_run(spark, pipeline_run):
    out, truth, _ = pipeline_run
    report.run(spark, load_config(), argparse.Namespace(output=out), "report-run")
    page = open(os.path.join(out, "report", "index.html"), encoding="utf-8").read()
    assert "http://" not in page and "https://" not in page and "<script" not in page  # opens offline, no CDN
    for title in ("Duplicate groups", "Outliers", "Broken files", "Leaks between splits", "Label issues",
                  "Flagged dark", "Distributions"):
        assert f"<h2>{title}" in page
    thumbs = re.findall(r'<img src="data:image/jpeg;base64,', page)
    assert len(thumbs) >= 20
    for broken in truth.loc[truth.kind == "broken", "path"]:
        assert broken.replace("'", "&#x27;") in page


def test_user_data_is_escaped_and_odd_names_get_thumbnails(spark, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    png = real_pngs(OPENCLIPART, 1, seed=12)[0]
    evil = "<img src=x onerror=alert(1)>.png"
    for name in (evil, "näme with spaces.png"):
        shutil.copy(png, src / name)  # byte-identical: one duplicate group with both
    shutil.copy(real_pngs(OPENCLIPART, 1, seed=13)[0], src / "other.png")
    out = tmp_path / "out"
    args = argparse.Namespace(input=str(src), manifest=None, layout=None, output=str(out), model=None,
                              batch_size=None, backend=None, k=None, duplicate_similarity=None)
    pipeline.run(spark, load_config(), args, "evil-run")
    page = open(out / "report" / "index.html", encoding="utf-8").read()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page
    group = page.split("<h2>Duplicate groups")[1].split("<h2>")[0]
    assert group.count('<img src="data:image/jpeg;base64,') == 2  # both odd names have thumbnails


def test_histogram_marks_thresholds():
    svg = histogram_svg([0.1, 0.5, 0.95, 0.97], "similarity", {"duplicate": 0.9})
    assert "<svg" in svg and "duplicate 0.9" in svg and "4 values" in svg

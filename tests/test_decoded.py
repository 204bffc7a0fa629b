"""Decode once per run: what ingest keeps gives the same embeddings and thumbnails as
decoding the files again, so stages run alone or chained agree."""
from __future__ import annotations

import argparse
import shutil

import numpy as np

from conftest import OPENCLIPART, real_pngs
from sparkdup import decoded
from sparkdup.config import load_config
from sparkdup.jobs import ingest, report
from sparkdup.jobs.embed import build_embeddings
from sparkdup.tables import read_table


def test_kept_pixels_equal_decoding_the_files_again(spark, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, png in enumerate(real_pngs(OPENCLIPART, 5, seed=21)):
        shutil.copy(png, src / f"{i}.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = str(tmp_path / "out")
    cfg = load_config(overrides=["embed.input_size=128", "report.thumbnail_side=64"])
    args = argparse.Namespace(input=str(src), manifest=None, layout=None, output=out)
    ingest.run(spark, cfg, args, "t")
    images = read_table(spark, out, "images")
    assert "model_input" not in images.columns and images.where("status = 'ok'").count() == 5

    pixels = decoded.model_inputs(spark, out, images, "128/center_crop")
    assert pixels is not None and pixels.count() == 5
    assert decoded.model_inputs(spark, out, images, "224/center_crop") is None  # other settings: not used

    kept = build_embeddings(spark, cfg, images, "t", out).toPandas().sort_values("image_id")
    again = build_embeddings(spark, cfg, images, "t", None).toPandas().sort_values("image_id")
    assert list(kept.image_id) == list(again.image_id) and len(kept) == 5
    assert np.allclose(np.stack(kept.embedding), np.stack(again.embedding), atol=1e-5)
    assert set(kept.model) == {"efficientnet_lite0?size=128"}

    ids = [int(i) for i in kept.image_id]
    from_table = report.thumbnails(spark, out, images, ids, cfg)
    shutil.rmtree(f"{out}/{decoded.NAME}")
    from_files = report.thumbnails(spark, out, images, ids, cfg)
    assert len(from_table) == 5 and from_table == from_files

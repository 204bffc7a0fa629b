"""The pure decode and statistics functions, on real images and awkward files (no Spark)."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import OPENCLIPART, real_pngs
from imagefiles import make_bad_folder
from sparkdup.udfs.decode import Limits, decode
from sparkdup.udfs.image_stats import image_stats
from sparkdup.udfs.ingest import describe_batch

import pandas as pd


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("bad"))
    expected, size = make_bad_folder(folder, real_pngs(OPENCLIPART, 1, seed=3)[0])
    return folder, expected, size


def _read(folder, name):
    with open(os.path.join(folder, name), "rb") as f:
        return f.read()


def test_every_awkward_file_gets_its_status(bad_folder):
    folder, expected, _ = bad_folder
    got = {name: decode(_read(folder, name), Limits()) for name in expected}
    assert {n: d.status for n, d in got.items()} == expected
    for name, d in got.items():
        assert (d.error is None) == (d.status == "ok"), name
        assert (d.rgb is not None) == (d.status == "ok"), name


def test_modes_are_converted_deliberately(bad_folder):
    folder, _, (w, h) = bad_folder
    cmyk = decode(_read(folder, "cmyk.jpg"), Limits())
    assert cmyk.mode == "CMYK" and cmyk.rgb.shape[2] == 3
    sixteen = decode(_read(folder, "sixteen_bit.png"), Limits())
    assert sixteen.mode.startswith("I") and sixteen.rgb.dtype == np.uint8 and sixteen.rgb.max() > 200
    anim = decode(_read(folder, "animated.gif"), Limits())
    assert anim.frames == 2 and anim.format == "GIF"
    palette = decode(_read(folder, "palette_transparent.png"), Limits())
    assert palette.mode == "P"
    # the transparent palette entry is composited onto white
    assert (palette.rgb.reshape(-1, 3) == 255).all(axis=1).any()
    grey = describe_batch(pd.Series([_read(folder, "grayscale.png")]), Limits()).iloc[0]
    assert bool(grey["is_grayscale"]) is True
    colour = describe_batch(pd.Series([_read(folder, "cmyk.jpg")]), Limits()).iloc[0]
    assert bool(colour["is_grayscale"]) is False


def test_exif_rotation_swaps_width_and_height(bad_folder):
    folder, _, (w, h) = bad_folder
    assert w != h
    rotated = decode(_read(folder, "exif_rotated.jpg"), Limits())
    assert (rotated.width, rotated.height) == (h, w)
    assert rotated.rgb.shape[:2] == (w, h)  # rows = displayed height = original width


def test_bomb_is_refused_before_decoding():
    d = decode(_read_bomb(), Limits(max_pixels=1_000_000))
    assert d.status == "too_large" and "max_pixels" in d.error and d.rgb is None


def _read_bomb():
    buf = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buf, "PNG")
    return buf.getvalue()


def test_file_size_limit():
    data = _read_bomb()
    d = decode(data, Limits(max_file_bytes=len(data) - 1))
    assert d.status == "too_large" and "max_file_bytes" in d.error


def test_statistics_track_what_they_measure():
    path = real_pngs(OPENCLIPART, 1, seed=11, min_bytes=20000)[0]
    img = Image.open(path).convert("RGB")
    sharp = np.asarray(img)
    blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(4)))
    assert image_stats(blurred)["blur"] < image_stats(sharp)["blur"] / 2
    black = image_stats(np.zeros((64, 64, 3), np.uint8))
    assert black["brightness"] == 0 and black["luma_p99"] == 0 and black["entropy"] == 0
    white = image_stats(np.full((64, 64, 3), 255, np.uint8))
    assert white["luma_p01"] == pytest.approx(255, abs=0.01)
    noise = image_stats(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert noise["entropy"] > 7.5 and noise["contrast"] > 30


def test_describe_also_prepares_model_input_and_thumbnail_from_the_same_pixels(bad_folder):
    """Decode once: the model input and thumbnail ingest keeps equal what embed and the
    report would make from the file with the same limits."""
    from sparkdup.udfs.embed import fit_to_square
    from sparkdup.udfs.prepared import Prepare, model_arrays
    from sparkdup.udfs.thumbnails import data_uri, thumbnail_data_uri

    folder, expected, _ = bad_folder
    names = sorted(expected)
    limits, prepare = Limits(max_side=512), Prepare(160, "center_crop", 96)
    rows = describe_batch(pd.Series([_read(folder, n) for n in names]), limits, prepare)
    assert list(rows.columns[-2:]) == ["model_input", "thumbnail"]
    plain = describe_batch(pd.Series([_read(folder, n) for n in names]), limits)
    pd.testing.assert_frame_equal(rows[plain.columns], plain)  # the statistics do not change
    for name, row in zip(names, rows.itertuples()):
        if expected[name] != "ok":
            assert row.model_input is None and row.thumbnail is None, name
            continue
        rgb = decode(_read(folder, name), limits).rgb
        (arr,) = model_arrays([row.model_input], 160)
        assert np.array_equal(arr, fit_to_square(rgb, 160, "center_crop")), name
        assert data_uri(row.thumbnail) == thumbnail_data_uri(_read(folder, name), 96, limits), name
        thumb = Image.open(io.BytesIO(row.thumbnail))
        assert thumb.format == "JPEG" and max(thumb.size) <= 96

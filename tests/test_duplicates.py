"""Duplicate verification, star splitting and the duplicate tables, on real icons.

The pure parts (udfs.verify, udfs.stars) are tested without Spark; the tables on a tiny
images/neighbors pair built from real oxygen icons, where every image is a neighbour of
every other at a high cosine (one big chained component, the worst case for chaining).
"""
from __future__ import annotations

import hashlib
import io
import itertools

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from sparkdup.udfs.decode import Limits, decode
from sparkdup.udfs.image_stats import pixel_signature
from sparkdup.udfs.stars import stars
from sparkdup.udfs import verify
from sparkdup.udfs.verify import compare, compare_many, is_same_picture, verdict

OXY = "/usr/share/icons/oxygen/base"
AN = {"duplicate_similarity": 0.65, "verify_min_fine": 0.95, "verify_max_changed": 0.02, "verify_max_local": 1.5,
      "verify_max_local_rest": 0.35, "verify_max_chroma": 30.0, "verify_min_coarse": 0.8,
      "components_method": "driver", "driver_max_edges": 100000}


def icon(name: str, size: int = 128) -> Image.Image:
    return Image.open(f"{OXY}/{size}x{size}/{name}.png").convert("RGBA")


def png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def flat(img: Image.Image) -> Image.Image:
    canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(canvas, img.convert("RGBA")).convert("RGB")


def sig(data: bytes) -> bytes:
    return pixel_signature(decode(data, Limits()).rgb)


# --------------------------------------------------------------------------- verify


@pytest.fixture(scope="module")
def kate():
    return icon("apps/akregator")


def test_edits_are_the_same_picture(kate):
    base = sig(png(kate))
    w, h = kate.size
    edits = {
        "jpeg40": png(flat(kate), "JPEG", quality=40),
        "resize": png(kate.resize((w // 2, h // 2))),
        "crop12": png(kate.crop((int(w * 0.12), 0, w, h))),
        "brighter": png(ImageEnhance.Brightness(flat(kate)).enhance(1.1)),
        "redrawn64": png(icon("apps/akregator", 64)),
        "grey": png(flat(kate).convert("L")),
        "crop15_jpeg": png(flat(kate).crop((int(w * 0.1), int(h * 0.05), w, h)), "JPEG", quality=50),
    }
    for name, data in edits.items():
        s = compare(base, sig(data))
        assert is_same_picture(s, AN), (name, s)


def test_look_alikes_are_not(kate):
    base = sig(png(kate))
    others = {
        "mirrored": png(kate.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "rotated": png(kate.transpose(Image.Transpose.ROTATE_90)),
        "other_icon": png(icon("apps/akonadi")),
    }
    for name, data in others.items():
        s = compare(base, sig(data))
        assert not is_same_picture(s, AN), (name, s)


def test_icons_drawn_on_one_template_are_not_duplicates():
    # oxygen's Calligra icons: one document template, a different emblem each
    words, sheets, stage = (sig(png(icon(f"apps/calligra{n}"))) for n in ("words", "sheets", "stage"))
    for a, b in ((words, sheets), (words, stage), (sheets, stage)):
        assert not is_same_picture(compare(a, b), AN), compare(a, b)


def emblem(base: Image.Image, name: str, size: int) -> Image.Image:
    out = base.copy()
    out.alpha_composite(icon(name).resize((size, size)), ((128 - size) // 2, (128 - size) // 2 + 10))
    return out


def test_a_small_differing_emblem_is_caught_by_the_local_score():
    # one folder, two emblems a fifth of its width: the global scores barely move (an older
    # rule took them for one picture); the tile residuals do not, beyond the one tile an
    # overlay may take
    folder = icon("places/folder-blue")
    a, b = emblem(folder, "apps/akregator", 24), emblem(folder, "apps/calligrawords", 24)
    s = compare(sig(png(a)), sig(png(b)))
    # (changed sits at the bound: 0.018-0.021 as BLAS threading breaks ties between windows)
    assert s["fine"] >= AN["verify_min_fine"] and s["changed"] <= 0.03, s
    assert s["local_rest"] > AN["verify_max_local_rest"] and s["local"] >= s["local_rest"], s
    assert not is_same_picture(s, AN)
    for edited in (png(flat(a), "JPEG", quality=50), png(a.crop((12, 0, 128, 128)))):
        assert is_same_picture(compare(sig(png(a)), sig(edited)), AN)


def caption(img: Image.Image, text: str, xy: tuple[int, int], size: int) -> Image.Image:
    """A semi-transparent white caption with a dark outline drawn over the picture."""
    out = flat(img).convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(xy, text, font=ImageFont.load_default(size=size), fill=(255, 255, 255, 180),
                               stroke_width=1, stroke_fill=(0, 0, 0, 180))
    return Image.alpha_composite(out, layer).convert("RGB")


def test_a_caption_in_a_corner_is_an_overlay_not_another_picture():
    # the caption changes one tile a lot (beyond the 0.5 the worst tile was once held to)
    # and the rest of the picture not at all: one tile may hold an overlay
    for name, xy in (("apps/akregator", (2, 2)), ("apps/kate", (80, 104))):
        img = icon(name)
        s = compare(sig(png(flat(img))), sig(png(caption(img, "\u00a9 24", xy, 18))))
        assert s["local"] > 0.5 and s["local_rest"] <= AN["verify_max_local_rest"], (name, s)
        assert is_same_picture(s, AN), (name, s)


def test_a_hue_change_is_another_picture_even_when_the_shapes_agree():
    # the same folder with its green channel at 85 %: blue turns violet, yellow orange. Every
    # shape score passes; only the opponent-colour residual sees the change.
    for name in ("places/folder-blue", "apps/akregator"):
        img = flat(icon(name))
        rgb = np.asarray(img).astype(np.float32)
        rgb[..., 1] *= 0.85
        s = compare(sig(png(img)), sig(png(Image.fromarray(rgb.astype(np.uint8)))))
        assert s["fine"] >= AN["verify_min_fine"] and s["local_rest"] <= AN["verify_max_local_rest"], s
        assert s["chroma"] > AN["verify_max_chroma"] and not is_same_picture(s, AN), (name, s)
    # a brightness edit keeps the hue: no colour residual to speak of
    kate = flat(icon("apps/akregator"))
    assert compare(sig(png(kate)), sig(png(ImageEnhance.Brightness(kate).enhance(0.9))))["chroma"] < 10


def test_recoloured_icon_and_blank_images_of_other_colours_are_not_the_same_picture(kate):
    r, g, b, alpha = kate.split()
    recoloured = compare(sig(png(kate)), sig(png(Image.merge("RGBA", (g, r, b, alpha)))))
    assert not is_same_picture(recoloured, AN)
    white, dark = Image.new("RGB", (64, 64), (255, 255, 255)), Image.new("RGB", (64, 64), (30, 30, 30))
    assert not is_same_picture(compare(sig(png(white)), sig(png(dark))), AN)
    # a flat image correlates with nothing but another flat one (it used to score 1 against anything)
    assert compare(sig(png(white)), sig(png(kate)))["fine"] < 0.5
    assert is_same_picture(compare(sig(png(white)), sig(png(Image.new("RGB", (80, 90), (252, 252, 252))))), AN)


def test_blanks_that_differ_only_by_noise_are_one_picture_but_not_a_grey_blank_and_a_coloured_one():
    rng = np.random.default_rng(0)

    def blank(colour, size, jitter):
        px = np.full((size, size, 3), colour, np.int16) + rng.integers(-jitter, jitter + 1, (size, size, 3))
        return Image.fromarray(np.clip(px, 0, 255).astype(np.uint8))

    assert is_same_picture(compare(sig(png(blank((200, 30, 30), 90, 2))), sig(png(blank((200, 30, 30), 70, 1)))), AN)
    # a grey blank is not the grey copy of every colour of its luma
    assert not is_same_picture(compare(sig(png(blank((60, 60, 60), 90, 1))), sig(png(blank((90, 60, 20), 90, 1)))), AN)
    assert not is_same_picture(compare(sig(png(blank((200, 30, 30), 90, 2))), sig(png(blank((30, 60, 200), 90, 2)))), AN)


def test_missing_or_malformed_signature_is_a_status_not_a_crash(kate):
    base = sig(png(kate))
    assert compare(base, None)["status"] == "no_signature"
    assert compare(base, b"\x00" * 10)["status"] == "no_signature"
    assert compare(base, base)["fine"] == pytest.approx(1.0, abs=1e-5)


def pearson(windows: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Reference: each window's correlation with the target over pixels and channels, every
    channel's mean taken out (what udfs.verify computes by factoring, without the windows)."""
    w = windows - windows.mean(axis=(-3, -2), keepdims=True)
    t = target - target.mean(axis=(0, 1))
    return (w * t).sum(axis=(-3, -2, -1)) / np.sqrt((w * w).sum(axis=(-3, -2, -1)) * (t * t).sum())


def test_batched_scores_equal_one_by_one_and_the_coarse_reject_only_skips_work(kate):
    """compare_many shares each image's coarse factors across its pairs: the scores must be
    those of compare() pair by pair, and the factored coarse correlation that of the
    windows made explicitly; the early reject leaves fine scores out, never a verified pair."""
    w, h = kate.size
    base = sig(png(kate))
    others = [sig(png(flat(kate), "JPEG", quality=40)), sig(png(kate.crop((int(w * 0.1), 0, w, h)))),
              sig(png(kate.transpose(Image.Transpose.FLIP_LEFT_RIGHT))), sig(png(icon("apps/akonadi"))),
              sig(png(flat(kate).convert("L"))), sig(png(icon("apps/kate")))]
    a = [base] * len(others) + others[:3]
    b = others + others[3:]
    batched = compare_many(a, b)
    for x, y, s in zip(a, b, batched):
        one = compare(x, y)
        for k in ("coarse", "fine", "changed", "local", "local_rest", "chroma"):
            assert s[k] == pytest.approx(one[k], abs=1e-5), k
        # the old way: every coarse window resampled and correlated with the other whole
        tx, ty = verify.thumbnail(x), verify.thumbnail(y)
        if verify._grey_flags(np.stack([tx, ty])).any():
            tx, ty = verify._luma(tx), verify._luma(ty)
        grid = verify._axis_weights(verify._crops(), verify.COARSE, 2 * verify.COARSE)
        direct = max(float(pearson(verify._windows(verify._source(p, verify.COARSE), grid, grid),
                                   verify._whole(verify._source(q, verify.COARSE), verify.COARSE)).max())
                     for p, q in ((tx, ty), (ty, tx)))
        assert s["coarse"] == pytest.approx(direct, abs=1e-4)
    early = compare_many(a, b, AN["verify_min_coarse"])
    assert any(e["fine"] is None for e in early)  # the look-alikes stop at the coarse search
    for full, e in zip(batched, early):
        if e["fine"] is None:
            assert e["coarse"] < AN["verify_min_coarse"] and not is_same_picture(e, AN)
            assert not is_same_picture(full, AN)
        else:
            assert e == full


def test_chunked_preparation_keeps_every_pair_its_own_scores(kate, monkeypatch):
    """compare_many prepares the images of CHUNK_PAIRS pairs together and forgets the rest:
    with chunks of two pairs, stacks of three images, an image whose pairs straddle chunks,
    one compared in colour and as grey, a missing and a malformed signature, every pair
    still gets the scores compare() gives it alone."""
    w, h = kate.size
    base = sig(png(kate))
    grey = sig(png(flat(kate).convert("L")))
    crop = sig(png(kate.crop((int(w * 0.1), 0, w, h))))
    jpeg = sig(png(flat(kate), "JPEG", quality=40))
    other = sig(png(icon("apps/akonadi")))
    a = [base, base, base, jpeg, crop, base, None, other, b"\x00" * 10, jpeg]
    b = [jpeg, crop, grey, grey, other, other, base, base, base, crop]
    monkeypatch.setattr(verify, "CHUNK_PAIRS", 2)
    monkeypatch.setattr(verify, "PREPARE_CHUNK", 3)
    chunked = compare_many(a, b, AN["verify_min_coarse"])
    monkeypatch.undo()
    for x, y, s in zip(a, b, chunked):
        one = compare(x, y, AN["verify_min_coarse"])
        assert s["status"] == one["status"]
        for k in ("coarse", "fine", "changed", "local", "local_rest", "chroma"):
            assert (s[k] is None) == (one[k] is None), k
            if s[k] is not None:
                assert s[k] == pytest.approx(one[k], abs=1e-9), k
    assert [s["status"] for s in chunked[6:9]] == ["no_signature", "ok", "no_signature"]
    assert sum(is_same_picture(s, AN) for s in chunked) >= 3  # the edits of kate verify
    images = verify._Images()  # memory: only the images of the chunk at hand stay prepared
    images.load(list(zip(a[:2], b[:2])))
    carried = images.prepared[(base, False)]
    images.load(list(zip(a[4:6], b[4:6])))
    assert set(images.prepared) == {(crop, False), (other, False), (base, False)}
    assert images.prepared[(base, False)] is carried and (jpeg, False) not in images.thumbs


# --------------------------------------------------------------------------- stars


def test_a_chain_splits_into_verified_stars_and_nothing_vanishes():
    # A path u0 ~ u1 ~ ... ~ u199, best unit first: stars of two along the chain.
    n = 200
    units = pd.DataFrame({"unit": np.arange(n), "pixels": np.arange(n)[::-1] * 10, "size_bytes": 1,
                          "path": [f"p{i:03d}" for i in range(n)], "copies": 1})
    units.loc[77, "copies"] = 3  # byte-identical files: always a group, even when left alone
    edges = pd.DataFrame({"unit_a": np.arange(n - 1), "unit_b": np.arange(1, n)})
    out = stars(units, edges)
    linked = set(zip(edges.unit_a, edges.unit_b)) | set(zip(edges.unit_b, edges.unit_a))
    assert out["unit"].is_unique
    for u, rep in zip(out.unit, out.rep_unit):
        assert u == rep or (u, rep) in linked, "every member is verified against its representative"
    assert 77 in set(out.unit)
    # every unit with a verified partner ends in some group (a chain of 200 leaves none alone)
    assert set(out.unit) == set(range(n))
    assert out.groupby("rep_unit").size().max() == 2


def test_members_failing_the_representative_form_their_own_group():
    # A is best and linked to B only; C ~ D are verified together but not with A.
    units = pd.DataFrame({"unit": [1, 2, 3, 4], "pixels": [400, 300, 200, 100], "size_bytes": 1,
                          "path": list("abcd"), "copies": 1})
    edges = pd.DataFrame({"unit_a": [1, 2, 3], "unit_b": [2, 3, 4]})
    out = stars(units, edges).sort_values("unit")
    assert out.rep_unit.tolist() == [1, 1, 3, 3]


def test_lone_unit_without_copies_is_dropped_and_empty_edges_work():
    units = pd.DataFrame({"unit": [5, 6], "pixels": [1, 2], "size_bytes": 1, "path": ["x", "y"], "copies": [1, 2]})
    out = stars(units, pd.DataFrame({"unit_a": [], "unit_b": []}))
    assert out.to_dict("list") == {"unit": [6], "rep_unit": [6]}


# --------------------------------------------------------------------------- tables


@pytest.fixture(scope="module")
def tables(spark):
    from sparkdup.findings.duplicates import duplicate_groups, duplicate_pairs

    kate, kwrite, big = icon("apps/akregator"), icon("apps/calligrawords"), icon("apps/akregator", 256)
    w, h = kate.size
    files = {
        "kate.png": png(kate),
        "kate_copy1.png": png(kate), "kate_copy2.png": png(kate),  # byte-identical
        "kate.jpg": png(flat(kate), "JPEG", quality=60),
        "kate_crop.png": png(kate.crop((0, int(h * 0.1), w, h))),
        "kate_mirror.png": png(kate.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "kwrite.png": png(kwrite), "kwrite_small.png": png(kwrite.resize((64, 64))),
        "kwrite_copy.png": png(kwrite),
        # the largest file: a look-alike that would be the representative of the whole component
        "big_lookalike.png": png(big.transpose(Image.Transpose.ROTATE_90)),
        "broken.png": b"\x89PNG\r\n\x1a\n broken",
    }
    rows = []
    for i, (name, data) in enumerate(files.items(), 1):
        d = decode(data, Limits())
        rows.append({"image_id": i, "path": f"file:/data/{name}", "status": d.status,
                     "content_hash": hashlib.sha256(data).hexdigest(), "width": d.width, "height": d.height,
                     "size_bytes": len(data), "label": None, "split": "train" if i % 2 else "val",
                     "signature": pixel_signature(d.rgb) if d.rgb is not None else None})
    images = spark.createDataFrame([tuple(r.values()) for r in rows], "image_id long, path string, status string, "
                                   "content_hash string, width int, height int, size_bytes long, label string, "
                                   "split string, signature binary")
    ok = [r["image_id"] for r in rows if r["status"] == "ok"]
    nb = pd.DataFrame([(a, b, 0.95, "ann") for a, b in itertools.permutations(ok + [len(rows)], 2)],
                      columns=["src", "dst", "similarity", "source"])
    neighbors = spark.createDataFrame(nb)
    pairs = duplicate_pairs(images, neighbors, AN).cache()
    groups = duplicate_groups(images, pairs, AN).toPandas()
    return pairs.toPandas(), groups, {r["path"].split("/")[-1]: r["image_id"] for r in rows}


def test_groups_hold_only_verified_pictures(tables):
    _, groups, ids = tables
    by_name = {p.split("/")[-1]: g for p, g in zip(groups.path, groups.group_id)}
    kate = {"kate.png", "kate_copy1.png", "kate_copy2.png", "kate.jpg", "kate_crop.png"}
    assert {n for n, g in by_name.items() if g == by_name["kate.png"]} == kate
    assert {n for n, g in by_name.items() if g == by_name["kwrite.png"]} == {"kwrite.png", "kwrite_small.png",
                                                                           "kwrite_copy.png"}
    assert "kate_mirror.png" not in by_name and "big_lookalike.png" not in by_name and "broken.png" not in by_name
    assert (groups.groupby("group_id").is_representative.sum() == 1).all()
    g = groups.set_index(groups.path.str.split("/").str[-1])
    assert g.loc[["kate_copy1.png", "kate_copy2.png", "kate.png"], "kind"].eq("exact").all()
    assert g.loc["kate.jpg", "kind"] == "near" and g.loc["kate.jpg", "evidence"] == "verified"
    assert g.loc["kate.jpg", "align_fine_to_representative"] >= AN["verify_min_fine"]
    assert g.loc["kate.jpg", "align_local_to_representative"] <= AN["verify_max_local"]
    assert g.loc["kate_copy1.png", "align_local_to_representative"] == 0.0
    assert g.group_size.eq(g.groupby("group_id").image_id.transform("size")).all()


def test_the_verdict_names_the_first_rule_a_pair_fails():
    ok = {"status": "ok", "coarse": 0.99, "fine": 0.99, "changed": 0.0, "local": 0.1, "local_rest": 0.1, "chroma": 1.0}
    assert verdict(ok, AN) == "verified" and is_same_picture(ok, AN)
    assert verdict(ok | {"fine": 0.9}, AN) == "pixels_differ"
    assert verdict(ok | {"fine": None, "changed": None}, AN) == "pixels_differ"  # coarse early exit
    assert verdict(ok | {"fine": float("nan"), "changed": float("nan")}, AN) == "pixels_differ"  # as a pandas row holds it
    assert verdict(ok | {"changed": 0.05}, AN) == "local_change"
    assert verdict(ok | {"local": 1.4}, AN) == "verified"  # one tile may hold an overlay
    assert verdict(ok | {"local": 1.6}, AN) == verdict(ok | {"local_rest": 0.4}, AN) == "local_change"
    assert verdict(ok | {"chroma": 31.0}, AN) == "colour_change"
    assert verdict(dict(verify.NO_SIGNATURE), AN) == "no_signature"


def test_pairs_keep_the_evidence_and_the_reason(tables):
    pairs, _, ids = tables
    p = pairs.set_index(["image_id_a", "image_id_b"])
    copy = p.loc[(ids["kate.png"], ids["kate_copy1.png"])]
    assert copy.hash_match and copy.is_duplicate and copy.reason == "hash" and copy.similarity == 1.0
    mirror = p.loc[(ids["kate.png"], ids["kate_mirror.png"])]
    assert not mirror.is_duplicate and mirror.reason in ("pixels_differ", "local_change")
    assert mirror.verify_status == "ok"
    # either rejected by the coarse search (no fine scores) or by the fine one
    assert (mirror.align_coarse < AN["verify_min_coarse"] and pd.isna(mirror.align_fine)
            and mirror.reason == "pixels_differ") or mirror.align_fine < 1
    jpg = p.loc[tuple(sorted((ids["kate.png"], ids["kate.jpg"])))]
    assert jpg.is_duplicate and 0 <= jpg.align_local <= AN["verify_max_local"]
    # the neighbour pointing at the broken file has no row (it was never decoded): nothing crashes
    assert ids["broken.png"] not in set(pairs.image_id_a) | set(pairs.image_id_b)
    assert set(pairs.reason) <= {"hash", "verified", "pixels_differ", "local_change", "colour_change", "no_signature"}
    assert jpg.align_local_rest <= jpg.align_local and jpg.align_chroma <= AN["verify_max_chroma"]
    # the table's decision is the rule's verdict on the table's own scores (one copy of the rule)
    for row in pairs[~pairs.hash_match].itertuples():
        scores = {"status": row.verify_status, "coarse": row.align_coarse, "fine": row.align_fine,
                  "changed": row.align_changed, "local": row.align_local, "local_rest": row.align_local_rest,
                  "chroma": row.align_chroma}
        scores = {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in scores.items()}
        assert row.reason == verdict(scores, AN) and row.is_duplicate == (row.reason == "verified"), row


def test_compare_takes_signatures_as_spark_rows_give_them(kate):
    """A signature collected from a Spark Row is a bytearray (search): it scores as the bytes."""
    a, b = sig(png(kate)), sig(png(flat(kate), "JPEG", quality=60))
    assert compare(bytearray(a), bytearray(b)) == compare(a, b)

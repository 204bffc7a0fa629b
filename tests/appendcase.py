"""A dataset that grows, on real clipart: the files of a first run, and what an append adds.

Layout split/label (train/a, train/b, val/a), so leaks and labels have something to see.
First run: P and a byte-identical copy (an exact group); Q and a JPEG re-encode (a near
group, the PNG its representative); the left and the right 88 % of S, each with a
byte-identical copy: two exact groups, whose crops do not verify against each other (an
offset of 24 %, past the verifier's crop search); fillers, one removed before the append.
The append adds: a third copy of P in val (joins P's group and leaks), Q upscaled 2x (more
pixels: it replaces Q's representative), the whole of S (each crop is 12 % off it, within
the crop search: it links the two groups into one), one more filler.
"""
from __future__ import annotations

import os
import shutil

from PIL import Image

from tests.conftest import real_pngs

CLIPART = "/usr/share/openclipart/png"


def _rgb(path: str) -> Image.Image:
    with Image.open(path) as img:
        rgba = img.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def first_files(data: str) -> dict[str, str]:
    """Write the first run's files under `data`; returns name -> path of the ones tests name."""
    p, q, s, *fillers = real_pngs(CLIPART, 10, seed=11)
    for d in ("train/a", "train/b", "val/a"):
        os.makedirs(os.path.join(data, d), exist_ok=True)
    names = {}

    def put(name: str) -> str:
        names[os.path.splitext(os.path.basename(name))[0]] = os.path.join(data, name)
        return os.path.join(data, name)

    shutil.copy(p, put("train/a/p.png"))
    shutil.copy(p, put("train/a/p_copy.png"))
    _rgb(q).save(put("train/b/q.png"))
    _rgb(q).save(put("train/b/q_re.jpg"), quality=90)
    whole = _rgb(s)
    w, h = whole.size
    whole.crop((0, 0, int(w * 0.88), h)).save(put("train/a/s_left.png"))
    whole.crop((w - int(w * 0.88), 0, w, h)).save(put("train/b/s_right.png"))
    shutil.copy(names["s_left"], put("train/a/s_left_copy.png"))
    shutil.copy(names["s_right"], put("train/b/s_right_copy.png"))
    for n, f in enumerate(fillers[:5]):
        shutil.copy(f, put(f"{'train/a' if n % 2 else 'train/b'}/f{n}.png"))
    names["_sources"] = {"p": p, "q": q, "s": s, "more": fillers[5]}
    return names


def grow(data: str, names: dict) -> dict[str, str]:
    """The append: new files, one removed; returns name -> path of the new ones."""
    src = names["_sources"]
    new = {"p_val": os.path.join(data, "val/a/p_val.png"), "q_big": os.path.join(data, "train/b/q_big.png"),
           "s_whole": os.path.join(data, "train/a/s_whole.png"), "f9": os.path.join(data, "val/a/f9.png")}
    shutil.copy(src["p"], new["p_val"])
    q = _rgb(src["q"])
    q.resize((q.width * 2, q.height * 2), Image.BICUBIC).save(new["q_big"])
    _rgb(src["s"]).save(new["s_whole"])
    shutil.copy(src["more"], new["f9"])
    os.remove(names["f0"])
    return new


SETTINGS = {"ingest.layout": "split/label"}


def build(spark, root) -> dict:
    """First run, the append, and a full run over the final files into another output:
    {data, appended, full, first_run, append_run, names, new}; names and new give each
    file's path as the tables spell it."""
    import sparkdup

    data, appended, full = str(root / "data"), str(root / "appended"), str(root / "full")
    names = first_files(data)
    first = sparkdup.run(data, appended, spark=spark, settings=SETTINGS)
    versions = {t: _version(spark, appended, t) for t in TABLES}
    new = grow(data, names)
    second = sparkdup.run(data, appended, spark=spark, settings=SETTINGS, append=True)
    sparkdup.run(data, full, spark=spark, settings=SETTINGS)
    return {"data": data, "appended": appended, "full": full, "first_run": first.run_id,
            "append_run": second.run_id, "append_counts": second.counts, "names": _as_rows(names),
            "new": _as_rows(new), "versions_before": versions}


def _as_rows(paths: dict) -> dict:
    """name -> the file's path as the images table spells it (sparkdup.listing.spell_local)."""
    from sparkdup.listing import spell_local

    return {k: spell_local(os.fsencode(os.path.abspath(v)))[0] for k, v in paths.items() if k != "_sources"}


TABLES = ("images", "embeddings", "neighbors", "duplicate_pairs", "duplicate_groups", "outliers", "leaks",
          "label_issues")


def _version(spark, output: str, table: str) -> int:
    path = os.path.join(output, table).replace("`", "``")
    return int(spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first()["version"])

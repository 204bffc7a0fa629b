"""The duplicate rule on photographs and wallpapers, a domain its thresholds were not chosen on.

    apt-get install gnome-backgrounds mate-backgrounds   # optional: ~45 wallpapers beside skimage's photos
    OMP_NUM_THREADS=1 python benchmarks/bench_verify_photos.py

The rule's thresholds were chosen on icons, clip art and game sprites (tools.groundtruth,
benchmarks/verify_pairs.py). This checks it where users' data often is: photographs and
wallpapers (scikit-image's sample photos, and the Debian wallpaper packages when
installed). Positives: each picture against each edit verify_pairs.edits makes (resize,
JPEG, crops, brightness, small watermark, palette, WebP, a combination) plus a grey copy
and a banner (a white box with text over ~3 % of the picture, a stock-photo mark).
Negatives: every pair of different pictures, which include the wallpapers' light and dark
versions of one design and one design in several colours. Prints, per edit, how many
pairs the rule decides right, and the failures with their scores.
"""
from __future__ import annotations

import glob
import itertools
import os
import random
import sys
from collections import Counter, defaultdict

from PIL import ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from verify_pairs import _flat, _load, _rgb, edits  # noqa: E402

from sparkdup.config import load_config  # noqa: E402
from sparkdup.udfs.image_stats import pixel_signature  # noqa: E402
from sparkdup.udfs.verify import RULE_KEYS, compare_many, verdict  # noqa: E402

WALLPAPERS = "/usr/share/backgrounds"
NOT_PHOTOS = ("chessboard", "logo")  # skimage's synthetic test patterns
MAX_SIDE = 2000  # larger wallpapers are shrunk first (only to save time; decode caps at 512 anyway)


def pictures() -> dict:
    import skimage

    data = os.path.join(os.path.dirname(skimage.__file__), "data")
    paths = [p for p in glob.glob(data + "/*.png") + glob.glob(data + "/*.jpg")
             if not any(n in p for n in NOT_PHOTOS)]
    paths += [p for p in glob.glob(WALLPAPERS + "/**/*", recursive=True) if p.endswith((".jpg", ".png", ".webp"))]
    out = {}
    for p in sorted(paths):
        img = _load(p)
        if img is not None:
            if max(img.size) > MAX_SIDE:
                img = img.resize((img.size[0] // 3, img.size[1] // 3))
            out[os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p)] = img
    return out


def banner(img):
    out = _flat(img).copy()
    w, h = out.size
    d = ImageDraw.Draw(out)
    d.rectangle((int(w * 0.6), int(h * 0.88), int(w * 0.97), int(h * 0.97)), fill=(255, 255, 255))
    d.text((int(w * 0.62), int(h * 0.89)), "stock photo", fill=(0, 0, 0))
    return _rgb(out)


def main() -> None:
    an = load_config()["analyze"]
    rule = {k: an[k] for k in RULE_KEYS}
    pics = pictures()
    if not os.path.isdir(WALLPAPERS):
        print(f"({WALLPAPERS} is absent: skimage's photos only; apt-get install gnome-backgrounds mate-backgrounds)")
    rng = random.Random(0)
    a, b, what = [], [], []
    sig = {name: pixel_signature(_rgb(_flat(img))) for name, img in pics.items()}
    for name, img in pics.items():
        made = edits(img, rng) + [("grayscale", _rgb(_flat(img).convert("L"))), ("banner", banner(img))]
        for edit, rgb in made:
            a.append(sig[name]), b.append(pixel_signature(rgb)), what.append((True, edit, name))
    for x, y in itertools.combinations(pics, 2):
        a.append(sig[x]), b.append(sig[y]), what.append((False, "different pictures", f"{x} | {y}"))
    right, total, wrong = Counter(), Counter(), defaultdict(list)
    for (same, edit, name), s in zip(what, compare_many(a, b, an["verify_min_coarse"])):
        decision = verdict(s, rule)
        total[edit] += 1
        if (decision == "verified") == same:
            right[edit] += 1
        else:
            wrong[edit].append((name, decision, {k: round(v, 3) for k, v in s.items() if isinstance(v, float)}))
    print(f"{len(pics)} pictures")
    print("| pairs | right | of |\n|---|---:|---:|")
    for edit in total:
        print(f"| {edit} | {right[edit]} | {total[edit]} |")
    for edit, rows in wrong.items():
        print(f"\n{edit}:")
        for row in rows:
            print("  ", *row)


if __name__ == "__main__":
    main()

"""Where the generator's pictures come from: real images of Debian packages, grouped in classes.

A class (``ClassSource``) names folders of one package and says how its files are read.
Two kinds of class:

* regular classes (openclipart clip art, oxygen icons): the generator keeps only members
  that are clearly different pictures (the thumbnail filter in ``images``), so they are
  easy negatives;
* look-alike classes (``lookalike=True``): animation frames of one game character, the
  icons of one theme and context, flags of one layout... Their members are *different*
  pictures that resemble each other closely: hard negatives a duplicate finder must not
  group. Only practically identical members (the same frame twice) are refused.

Every picture is named by a *ref*: a file path, ``PATH#i/n`` for frame i of n of a sprite
sheet (square frames stacked vertically), and ``PATH@S`` for an SVG rendered S pixels
wide. ``load_ref`` turns a ref into an RGB picture on white.

Packages: openclipart-png, oxygen-icon-theme, papirus-icon-theme, breeze-icon-theme,
tango-icon-theme, supertux-data, hedgewars-data, freeciv-data, pingus-data (all installed
by scripts/setup.sh). SVGs are rendered with resvg (the ``resvg-py`` wheel, MIT).
"""
from __future__ import annotations

import glob
import io
import os
import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

OPENCLIPART_ROOT = "/usr/share/openclipart/png"
OXYGEN_ROOT = "/usr/share/icons/oxygen/base"
OXYGEN_SIZES = (48, 64, 128, 256)  # sizes a multi-size near-duplicate set may use (>= 48 px)
ICONS_ROOT = "/usr/share/icons"
GAMES_ROOT = "/usr/share/games"

MAX_SOURCE_PIXELS = 30_000_000  # skip (absurdly) huge Debian files rather than decode them
MIN_SIDE = 48  # pictures smaller than this are skipped (after a look-alike class's upscaling)
MAX_ASPECT = 3.0  # pictures more elongated than this are skipped
MIN_GREY_STD = 5.0  # pictures whose grey levels (0..255) vary less than this are blank: skipped
MIN_INK = 0.005  # ... as are those with less than this share of pixels visibly darker than white


@dataclass(frozen=True)
class ClassSource:
    """One class of originals: which Debian folders it is drawn from and how."""

    label: str
    openclipart: tuple[str, ...] = ()  # folders under OPENCLIPART_ROOT, searched recursively
    oxygen: tuple[str, ...] = ()  # oxygen icon categories (actions, devices, mimetypes, ...)
    theme: tuple[str, str] | None = None  # (papirus | breeze | tango, icon context)
    files: tuple[str, ...] = ()  # globs of raster files (game sprites)
    sheets: bool = False  # files are vertical strips of square frames: each frame is a picture
    strips_only: bool = False  # ... and files that are not strips (grids, single frames) are left out
    include: str | None = None  # regex a file name must match
    exclude: str | None = None  # regex (searched in the path below the folder) that drops a file
    # file name -> "the same picture" key: only the first candidate (in seeded order) of
    # each key is used (one playing card in four decks, a pictogram and its negative).
    same_picture: Callable[[str], str] | None = None
    lookalike: bool = False  # members are different pictures that look alike (hard negatives)
    family: str = ""  # classes of one family are siblings (look alike as classes)
    rotatable: bool = False  # asymmetric symbols: a rotated/mirrored member is another picture
    upscale_to: int = 0  # small sprites are enlarged (nearest neighbour) until min side >= this
    why: str = ""


def _card_key(name: str) -> str:
    """white_h_7.png / bordered_d_7.png -> red_7: one card per rank and colour, any deck."""
    m = re.match(r"^[a-z]+_([a-z]+)_(\w+)\.png$", name)
    if not m:
        return name
    suit, rank = m.groups()
    colour = {"c": "black", "s": "black", "d": "red", "h": "red"}.get(suit, suit)
    return f"{colour}_{rank}"


def _aiga_key(name: str) -> str:
    """aiga_bus1.png (negative) / aiga_bus_.png (positive) -> aiga_bus."""
    return re.sub(r"(1|_)?\.png$", "", name)


def _frame_key(name: str) -> str:
    """walk-left-3.png / walk-right-3.png stay apart (a mirror is another picture), but
    '-old' re-exports of a frame are the same frame."""
    return re.sub(r"-old(?=\.png$)", "", name)


# Core classes: members look alike and differ from the other classes. Small sets use the
# first few (see plan.default_tiers), so the most distinct ones come first.
CORE_CLASSES: tuple[ClassSource, ...] = (
    ClassSource(
        "flags", openclipart=("signs_and_symbols/flags",), exclude=r"semaphore|historic", family="signs",
        why="national and regional flags: flat coloured rectangles with stripes and emblems",
    ),
    ClassSource("fruit", openclipart=("food/fruit",), family="food", why="round, colourful fruit drawings on white"),
    ClassSource(
        "devices", oxygen=("devices",), family="oxygen",
        why="oxygen hardware icons (drives, phones, printers, media): glossy grey/black "
        "objects; each icon exists at several sizes, the natural multi-size near duplicates",
    ),
    ClassSource(
        "pictograms", openclipart=("transportation/aiga-symbols", "signs_and_symbols/map_symbols"),
        include=r"^aiga", exclude=r"arrow|_(up|down|left|right)", same_picture=_aiga_key, family="signs",
        rotatable=True,
        why="black-and-white AIGA transport pictograms (arrows left out: they are the arrows class)",
    ),
    ClassSource(
        "road_signs", openclipart=("transportation/roadsigns",), family="signs", rotatable=True,
        why="red-rimmed triangles and circles, blue mandatory discs",
    ),
    ClassSource("animals", openclipart=("animals",), family="living",
                why="colour drawings of mammals, birds, fish, bugs and dinosaurs"),
    ClassSource(
        "arrows", openclipart=("shapes/arrows",), family="shapes", rotatable=True,
        why="single arrows and arrow signs (many are rotations or recolourings of each other: "
        "the thumbnail filter keeps one of each)",
    ),
    ClassSource(
        "documents", oxygen=("mimetypes",), family="oxygen",
        why="oxygen file-type icons: a white sheet of paper with a small emblem, at several sizes",
    ),
    ClassSource(
        "playing_cards",
        openclipart=tuple(f"recreation/games/cards/{d}" for d in ("white", "simple", "bordered", "ornamental")),
        same_picture=_card_key, family="recreation",
        why="white upright cards with corner indices and pips or court figures (one card per "
        "rank and colour: the same card in another deck or suit is nearly the same picture)",
    ),
)

# Extra regular classes: coherent styles, less distinct from the core.
EXTRA_CLASSES: tuple[ClassSource, ...] = (
    ClassSource("grey_icons", openclipart=("computer/icons/flat-theme",), family="clipart_icons",
                why="a flat grey monochrome toolbar icon theme"),
    ClassSource("lemon_icons", openclipart=("computer/icons/lemon-theme",), family="clipart_icons",
                why="a glossy green/yellow icon theme"),
    ClassSource("people", openclipart=("people",), exclude=r"smilies", family="living",
                why="people, faces, hands and clothing drawings"),
    ClassSource("food", openclipart=("food",), exclude=r"fruit", family="food",
                why="dishes, drinks, bread, vegetables and sweets"),
    ClassSource("vehicles", openclipart=("transportation",), exclude=r"aiga|roadsigns", family="transport",
                why="cars, trains, planes and boats"),
    ClassSource("app_icons", oxygen=("apps",), family="oxygen", why="oxygen application icons, at several sizes"),
    ClassSource("tools", openclipart=("tools",), family="tools", why="hand tools and weapons"),
    ClassSource("plants", openclipart=("plants",), family="living", why="trees, flowers and leaves"),
    ClassSource("buildings", openclipart=("buildings",), family="places", why="houses, churches, towers"),
    ClassSource("office", openclipart=("office",), family="tools", why="office supplies and furniture"),
    ClassSource("electronics", openclipart=("electronics",), family="tools", why="circuits, components, gadgets"),
    ClassSource("science", openclipart=("science",), family="shapes", why="lab glassware, atoms, diagrams"),
    ClassSource("geography", openclipart=("geography",), family="places", why="maps, globes, landscapes"),
    ClassSource("decorations", openclipart=("decorations",), family="shapes", why="ornaments, borders, frames"),
    ClassSource("recreation", openclipart=("recreation",), exclude=r"cards", family="recreation",
                why="sports, games and toys (playing cards are their own class)"),
    ClassSource("education", openclipart=("education", "containers", "buttons", "logos"), family="tools",
                why="school things, containers, buttons and logos"),
    ClassSource("special", openclipart=("special",), family="shapes", why="seasonal and special clip art"),
    ClassSource("symbols", openclipart=("signs_and_symbols",), exclude=r"flags|map_symbols", family="signs",
                rotatable=True, why="signs and symbols other than flags"),
    ClassSource("shapes", openclipart=("shapes",), exclude=r"arrows", family="shapes",
                why="geometric shapes, borders and patterns (arrows are their own class)"),
    ClassSource("computer", openclipart=("computer",), exclude=r"icons/(flat|lemon)-theme", family="clipart_icons",
                why="computer hardware, network diagrams and toolbar buttons"),
    ClassSource("unsorted", openclipart=("unsorted",), family="shapes", why="openclipart's unsorted drawings"),
    ClassSource("smilies", openclipart=("people/smilies",), family="living", lookalike=True, why="round smiley faces drawn on one template (look-alikes)"),
)

# The other oxygen contexts: icons of one theme, look-alikes like the SVG themes' contexts.
OXYGEN_CLASSES: tuple[ClassSource, ...] = tuple(
    ClassSource(f"oxygen_{ctx}", oxygen=(ctx,), lookalike=True, family="oxygen", rotatable=ctx == "actions",
                why=f"oxygen icons of context {ctx}, at several sizes (look-alikes)")
    for ctx in ("actions", "categories", "places", "status", "emotes")
)

# Look-alike classes from icon themes: one class per (theme, context). Different icons of
# one theme and context are drawn on one grid in one palette: hard negatives.
_THEME_CONTEXTS = {
    "papirus": ("apps", "devices", "mimetypes", "places", "status", "emblems", "actions", "emotes"),
    "breeze": ("actions", "applets", "apps", "devices", "emblems", "emotes", "mimetypes", "places",
               "preferences", "status", "categories"),
    "tango": ("actions", "apps", "categories", "devices", "emblems", "emotes", "mimetypes", "places", "status"),
}
THEME_CLASSES: tuple[ClassSource, ...] = tuple(
    ClassSource(f"{theme}_{ctx}", theme=(theme, ctx), lookalike=True, family=theme,
                rotatable=ctx == "actions",
                why=f"{theme} icons of context {ctx}: one style, one grid (look-alikes)")
    for theme, contexts in _THEME_CONTEXTS.items() for ctx in contexts
)


def _supertux_classes() -> tuple[ClassSource, ...]:
    """One class per supertux creature (and Tux's small/big forms): its animation frames."""
    root = os.path.join(GAMES_ROOT, "supertux2", "images", "creatures")
    out = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if name == "tux":
            for form in ("small", "big"):
                out.append(ClassSource(f"supertux_tux_{form}", files=(f"{root}/tux/{form}/*.png",),
                                       same_picture=_frame_key, lookalike=True, family="supertux",
                                       upscale_to=128, why=f"animation frames of Tux ({form})"))
            continue
        folder = os.path.join(root, name)
        if len(glob.glob(os.path.join(folder, "*.png"))) >= 6:
            out.append(ClassSource(f"supertux_{name}", files=(f"{folder}/*.png",), same_picture=_frame_key,
                                   lookalike=True, family="supertux", upscale_to=128,
                                   why=f"animation frames and poses of the supertux creature {name}"))
    return tuple(out)


HW = os.path.join(GAMES_ROOT, "hedgewars", "Data", "Graphics")
FC = os.path.join(GAMES_ROOT, "freeciv")
PG = os.path.join(GAMES_ROOT, "pingus", "data", "images")
GAME_CLASSES: tuple[ClassSource, ...] = _supertux_classes() + (
    ClassSource("hedgewars_hats", files=(f"{HW}/Hats/*.png",), lookalike=True, family="hedgewars", upscale_to=128,
                why="hats drawn on one hedgehog-head template (32 px sprites, enlarged)"),
    ClassSource("hedgewars_graves", files=(f"{HW}/Graves/*.png",), sheets=True, lookalike=True,
                family="hedgewars", upscale_to=128,
                why="gravestone sprites: the frames of each animated grave, and single graves"),
    ClassSource("hedgewars_hedgehog", files=(f"{HW}/Hedgehog/*.png",), sheets=True, strips_only=True, lookalike=True,
                family="hedgewars", upscale_to=128,
                why="animation frames of the hedgehog character (each sheet sliced into frames)"),
    ClassSource("freeciv_flags", files=(f"{FC}/flags/*-large.png",), exclude=r"-shield", lookalike=True,
                family="freeciv", upscale_to=132,
                why="national flags drawn on one rectangle layout (the -large set only)"),
    ClassSource("freeciv_shields", files=(f"{FC}/flags/*-shield-large.png",), lookalike=True, family="freeciv",
                upscale_to=128, why="the same flags on one shield outline"),
    ClassSource("freeciv_buildings", files=(f"{FC}/buildings/*.png", f"{FC}/wonders/*.png"), lookalike=True,
                family="freeciv", upscale_to=128, why="city improvement and wonder pictures of one size and style"),
    ClassSource("pingus_signposts", files=(f"{PG}/hotspots/signposts/*.png",), lookalike=True, family="pingus",
                upscale_to=128, rotatable=True,
                why="one signpost pointing in eight directions: rotated/mirrored symbols are different pictures"),
    ClassSource("pingus_entrances", files=(f"{PG}/entrances/*.png", f"{PG}/exits/*.png"), lookalike=True,
                family="pingus", upscale_to=96, why="level entrances and exits in one drawing style"),
)

CLASSES: tuple[ClassSource, ...] = CORE_CLASSES + EXTRA_CLASSES + OXYGEN_CLASSES + THEME_CLASSES + GAME_CLASSES
CLASS_BY_LABEL = {c.label: c for c in CLASSES}


def siblings(label: str, present: list[str]) -> list[str]:
    """Classes among present that look alike as classes: same family (two icon contexts of
    one theme, two clip-art categories of one kind, two characters of one game)."""
    fam = CLASS_BY_LABEL[label].family if label in CLASS_BY_LABEL else ""
    return [c for c in present if c != label and fam and CLASS_BY_LABEL[c].family == fam]


# ----------------------------------------------------------------------------------------
# candidate listing


@dataclass
class Candidate:
    label: str
    key: str  # "same picture" key (dedup)
    files: dict[int, str]  # size -> ref (icons: the icon at each size; else {0: ref})
    real: str = ""  # resolved path of the preferred file
    set_id: str = ""  # look-alike set of a look-alike class (the class, or class/sheet)


def _list_openclipart(src: ClassSource) -> list[Candidate]:
    out = []
    for folder in src.openclipart:
        root = os.path.join(OPENCLIPART_ROOT, folder)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.lower().endswith(".png"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                if src.include and not re.search(src.include, name):
                    continue
                if src.exclude and re.search(src.exclude, rel):
                    continue
                path = os.path.join(dirpath, name)
                key = src.same_picture(name) if src.same_picture else ""
                out.append(Candidate(src.label, key, {0: path}, os.path.realpath(path)))
    return out


def _list_oxygen(src: ClassSource) -> list[Candidate]:
    by_name: dict[str, dict[int, str]] = {}
    all_sizes = sorted(
        int(d.split("x")[0]) for d in os.listdir(OXYGEN_ROOT) if re.fullmatch(r"\d+x\d+", d)
    ) if os.path.isdir(OXYGEN_ROOT) else []
    for cat in src.oxygen:
        for size in all_sizes:
            folder = os.path.join(OXYGEN_ROOT, f"{size}x{size}", cat)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                if name.endswith(".png") and (not src.include or re.search(src.include, name)):
                    if src.exclude and re.search(src.exclude, name):
                        continue
                    by_name.setdefault(f"{cat}/{name}", {})[size] = os.path.join(folder, name)
    out = []
    for name in sorted(by_name):
        files = {s: p for s, p in by_name[name].items() if s in OXYGEN_SIZES}
        if not any(s >= 64 for s in files):
            continue
        biggest = files[max(files)]
        out.append(Candidate(src.label, name, files, os.path.realpath(biggest)))
    return out


def _theme_dirs(theme: str, ctx: str) -> dict[int, str]:
    """Nominal size -> folder of one theme context (SVG themes keep a drawing per size)."""
    base = os.path.join(ICONS_ROOT, {"papirus": "Papirus", "breeze": "breeze", "tango": "Tango"}[theme])
    if theme == "papirus":
        return {s: os.path.join(base, f"{s}x{s}", ctx) for s in (48, 64)}
    if theme == "breeze":
        return {s: os.path.join(base, ctx, str(s)) for s in (22, 32, 48, 64)}
    return {128: os.path.join(base, "scalable", ctx)}


# width an SVG drawn for a nominal size is rendered at (increasing with the nominal size)
_RENDER_WIDTH = {22: 64, 32: 80, 48: 96, 64: 128, 128: 128}


def _list_theme(src: ClassSource) -> list[Candidate]:
    """Icons of one theme context; an icon's drawings at each nominal size are its files
    (rendered _RENDER_WIDTH wide). Aliases (symlinks to one drawing) count once."""
    theme, ctx = src.theme
    by_name: dict[str, dict[int, str]] = {}
    for size, folder in sorted(_theme_dirs(theme, ctx).items()):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if name.endswith(".svg") and os.path.isfile(path):
                by_name.setdefault(name, {})[_RENDER_WIDTH[size]] = path
    out, seen = [], set()
    for name in sorted(by_name):
        files = by_name[name]
        real = os.path.realpath(files[max(files)])
        if real in seen:
            continue
        seen.add(real)
        # the same drawing reached through a size folder symlink is no other size
        reals: dict[str, int] = {}
        for s in sorted(files, reverse=True):
            reals.setdefault(os.path.realpath(files[s]), s)
        out.append(Candidate(src.label, f"{theme}:{os.path.basename(real)}",
                             {s: f"{files[s]}@{s}" for s in reals.values()}, real, src.label))
    return out


def _list_files(src: ClassSource) -> list[Candidate]:
    out = []
    paths = sorted({p for pattern in src.files for p in glob.glob(pattern)})
    for path in paths:
        name = os.path.basename(path)
        if src.include and not re.search(src.include, name):
            continue
        if src.exclude and re.search(src.exclude, name):
            continue
        key = src.same_picture(name) if src.same_picture else ""
        if not src.sheets:
            out.append(Candidate(src.label, key, {0: path}, os.path.realpath(path), src.label))
            continue
        try:
            with Image.open(path) as im:
                w, h = im.size
        except Exception:  # noqa: BLE001 - unreadable sheet: not used
            continue
        n = h // w if w and h % w == 0 else 1
        if src.strips_only and n < 2:
            continue
        stem = os.path.splitext(name)[0]
        set_id = f"{src.label}/{stem}" if n > 1 else src.label
        for i in range(n):
            ref = f"{path}#{i}/{n}" if n > 1 else path
            out.append(Candidate(src.label, f"{key}#{i}" if key else "", {0: ref}, ref, set_id))
    return out


def list_candidates(src: ClassSource) -> list[Candidate]:
    """All usable source pictures of a class, in a stable (sorted) order."""
    if src.theme:
        try:
            import resvg_py  # noqa: F401
        except ImportError as e:
            raise ImportError(f"tools.groundtruth renders SVG icon themes with resvg-py ({e}): "
                              "run scripts/setup.sh (scripts/requirements.txt pins it)") from e
        cands = _list_theme(src)
    else:
        cands = _list_openclipart(src) + _list_oxygen(src) + _list_files(src)
    for c in cands:
        if src.lookalike and not c.set_id:
            c.set_id = src.label
    seen, unique = set(), []
    for c in cands:  # symlinks / the same file reached twice
        if c.real not in seen:
            seen.add(c.real)
            unique.append(c)
    return unique


# ----------------------------------------------------------------------------------------
# reading a ref


def on_white(img: Image.Image) -> Image.Image:
    """Any mode -> RGB, transparency composited onto white."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def _open_ref(ref: str) -> Image.Image:
    """Decode a ref (file, sheet frame or SVG at a width) to a loaded Pillow image."""
    if "@" in ref and ref.rsplit("@", 1)[0].endswith(".svg"):
        import resvg_py

        path, width = ref.rsplit("@", 1)
        data = resvg_py.svg_to_bytes(svg_path=path, width=int(width), skip_system_fonts=True)
        im = Image.open(io.BytesIO(bytes(data)))
        im.load()
        return im
    path, _, frame = ref.partition("#")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning: checked just below
        im = Image.open(path)
        w, h = im.size
        if w * h > MAX_SOURCE_PIXELS:
            raise ValueError("too large")
        im.load()
    if frame:
        i, n = (int(x) for x in frame.split("/"))
        side = h // n
        im = im.crop((0, i * side, w, (i + 1) * side))
    return im


def load_ref(ref: str, max_side: int, upscale_to: int = 0) -> Image.Image | None:
    """Decode a source picture onto white, at most max_side per side (small sprites first
    enlarged by an integer factor until their short side reaches upscale_to); None if
    unusable (unreadable, too small, too elongated, blank)."""
    try:
        im = _open_ref(ref)
        if im.mode == "P" or "transparency" in im.info or im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA")
        w, h = im.size
        if upscale_to and 0 < min(w, h) < upscale_to:
            f = -(-upscale_to // min(w, h))
            im = im.resize((w * f, h * f), Image.NEAREST)
            w, h = im.size
        if min(w, h) < MIN_SIDE or max(w, h) > MAX_ASPECT * min(w, h):
            return None
        if max(w, h) > max_side:  # shrink first (Pillow resamples alpha premultiplied)
            factor = max(w, h) // (2 * max_side)
            if factor > 1:
                im = im.reduce(factor)
            im.thumbnail((max_side, max_side), Image.LANCZOS)
        rgb = on_white(im)
    except Exception:  # noqa: BLE001 - a Debian file that cannot be read is just not used
        return None
    if min(rgb.size) < MIN_SIDE // 2:
        return None
    grey = np.asarray(rgb.convert("L"))
    if grey.std() < MIN_GREY_STD or (grey < 230).mean() < MIN_INK:  # (nearly) blank on white
        return None
    return rgb


def ref_path(ref: str) -> str:
    """The Debian file a ref reads."""
    if "@" in ref and ref.rsplit("@", 1)[0].endswith(".svg"):
        return ref.rsplit("@", 1)[0]
    return ref.partition("#")[0]

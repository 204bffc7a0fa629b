"""The report page: plain HTML and inline SVG, no scripts, no external assets.

Everything that comes from the user's data (paths, labels, errors) goes through
`html.escape`, so a file named like markup shows as text.
"""
from __future__ import annotations

import html

import numpy as np

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h2{margin-top:2em;border-bottom:1px solid #ccc}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px;width:180px;font-size:12px;word-break:break-all}
.card img{max-width:168px;max-height:168px;display:block;margin:auto}
.keep{border-color:#2a2;border-width:2px}
.minor{width:130px;opacity:.85}.minor img{max-width:118px;max-height:118px}
.pager{margin:8px 0;font-size:14px}.pager a{margin-right:1em}
.group{border:1px solid #eee;padding:8px;margin:8px 0}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.note{color:#666;font-size:13px}
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def short_path(path: str) -> str:
    """The last folder and the file name: enough to recognise an image under a card."""
    parts = str(path or "").rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else str(path or "")


def card(thumb: str | None, path: str, lines: list[str], keep: bool = False, minor: bool = False) -> str:
    """One image: thumbnail, its short path (the full path on hover), caption lines; `keep`
    frames the one to keep, `minor` is a smaller companion (a neighbour, a voter)."""
    img = f'<img src="{esc(thumb)}" alt="">' if thumb else '<div class="note">(no preview)</div>'
    body = "<br>".join([f'<span title="{esc(path)}">{esc(short_path(path))}</span>'] + [esc(line) for line in lines])
    classes = "card" + (" keep" if keep else "") + (" minor" if minor else "")
    return f'<div class="{classes}">{img}{body}</div>'


def histogram_svg(values, title: str, marks: dict[str, float] | None = None, bins: int = 40) -> str:
    """A small inline SVG histogram, with vertical lines at the given thresholds."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return f'<p class="note">{esc(title)}: no values</p>'
    lo, hi = float(values.min()), float(values.max())
    for v in (marks or {}).values():
        lo, hi = min(lo, v), max(hi, v)
    hi = hi if hi > lo else lo + 1
    counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
    w, h, top = 400, 120, max(int(counts.max()), 1)
    bw = w / bins
    bars = "".join(f'<rect x="{i * bw:.1f}" y="{h - c / top * h:.1f}" width="{bw - 1:.1f}" height="{c / top * h:.1f}" '
                   f'fill="#69c"/>' for i, c in enumerate(counts))
    lines = "".join(f'<line x1="{(v - lo) / (hi - lo) * w:.1f}" y1="0" x2="{(v - lo) / (hi - lo) * w:.1f}" y2="{h}" '
                    f'stroke="#c33"/><text x="{(v - lo) / (hi - lo) * w + 3:.1f}" y="12" font-size="10" '
                    f'fill="#c33">{esc(name)} {v:g}</text>' for name, v in (marks or {}).items())
    return (f'<figure><figcaption>{esc(title)} ({len(values)} values, {lo:.3g} to {hi:.3g})</figcaption>'
            f'<svg width="{w}" height="{h}" role="img">{bars}{lines}</svg></figure>')


def section(title: str, total: int, collected: int, body: str, table_name: str, page_no: int = 1,
            per_page: int | None = None) -> str:
    """A finding's heading, which items of how many this page shows, and where the rest are."""
    per_page = per_page or max(collected, 1)
    first = (page_no - 1) * per_page + 1
    last = min(page_no * per_page, collected)
    shown = f"Showing {first}-{last} of {total}." if collected else ""
    rest = (f' All of them: the <code>{esc(table_name)}</code> table.' if total > collected else "")
    note = f'<p class="note">{shown}{rest}</p>' if total > 0 and (total > last or page_no > 1) else ""
    return f'<h2>{esc(title)} ({total})</h2>{note}{body}'


def pager(key: str, page_no: int, pages: int) -> str:
    """Links between a section's pages: page 1 is in index.html, page n in KEY-n.html."""
    if pages <= 1:
        return ""

    def href(n: int) -> str:
        return "index.html" if n == 1 else f"{esc(key)}-{n}.html"

    links = []
    if page_no > 1:
        links.append(f'<a href="{href(page_no - 1)}">&larr; previous</a>')
    links.append(f"page {page_no} of {pages}")
    if page_no < pages:
        links.append(f'<a href="{href(page_no + 1)}">next &rarr;</a>')
    return f'<div class="pager">{" ".join(links)}</div>'


def page(title: str, summary_rows: list[tuple[str, int, float]] | None, sections: list[str]) -> str:
    """A whole HTML document; the summary table only on the index page."""
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{count}</td><td>{share:.1%}</td></tr>"
                   for name, count, share in summary_rows or [])
    summary = (f"<table><tr><th>finding</th><th>images</th><th>share of dataset</th></tr>{rows}</table>"
               if summary_rows else '<p><a href="index.html">&larr; back to the report</a></p>')
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{summary}"
            + "".join(sections) + "</body></html>")

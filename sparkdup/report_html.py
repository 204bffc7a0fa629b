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
.group{border:1px solid #eee;padding:8px;margin:8px 0}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.note{color:#666;font-size:13px}
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def card(thumb: str | None, lines: list[str], keep: bool = False) -> str:
    img = f'<img src="{esc(thumb)}" alt="">' if thumb else '<div class="note">(no preview)</div>'
    body = "<br>".join(esc(line) for line in lines)
    return f'<div class="card{" keep" if keep else ""}">{img}{body}</div>'


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


def section(title: str, total: int, shown: int, body: str, table_name: str) -> str:
    more = (f'<p class="note">Showing {shown} of {total}. All of them: the <code>{esc(table_name)}</code> '
            f'table.</p>' if total > shown else "")
    return f"<h2>{esc(title)} ({total})</h2>{more}{body}"


def page(title: str, summary_rows: list[tuple[str, int, float]], sections: list[str]) -> str:
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{count}</td><td>{share:.1%}</td></tr>"
                   for name, count, share in summary_rows)
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>"
            f"<table><tr><th>finding</th><th>images</th><th>share of dataset</th></tr>{rows}</table>"
            + "".join(sections) + "</body></html>")

"""Split one connected component of verified duplicate links into stars (pure pandas, no Spark).

A connected component can chain different pictures together (A~B, B~C, A and C
unrelated). Splitting it into stars removes the chain: the best remaining unit (most
pixels, then largest file, then smallest path) becomes a representative, every remaining
unit with a verified link *to it* joins its group, and the rest start over among
themselves, so a member that fails against one representative forms a group with its own
verified partners instead of vanishing. Each unit is a set of byte-identical files (one
content_hash), so exact copies can never be separated: they enter and leave a group
together, and a unit of two or more files is a group of its own even when no other
picture joins it.

Cost is linear in the component's links (each round removes its representative and its
star); the component is one group of a grouped pandas UDF, bounded by the links the
neighbour graph allows (k per image).
"""
from __future__ import annotations

import pandas as pd

UNIT_COLUMNS = ("unit", "pixels", "size_bytes", "path", "copies")
EDGE_COLUMNS = ("unit_a", "unit_b")
OUT_COLUMNS = ("unit", "rep_unit")


def stars(units: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
    """(unit, rep_unit) for each unit that ends in a group of two or more files.

    units: one row per unit of the component (UNIT_COLUMNS; ``copies`` = its files).
    edges: verified links between units (``unit_a``, ``unit_b``), in either direction.
    """
    order = units.sort_values(["pixels", "size_bytes", "path"], ascending=[False, False, True], kind="stable")
    copies = dict(zip(order["unit"], order["copies"]))
    linked: dict[int, set[int]] = {}
    pairs = zip(edges["unit_a"], edges["unit_b"]) if len(edges) else ()
    for a, b in pairs:
        if a != b:
            linked.setdefault(a, set()).add(b)
            linked.setdefault(b, set()).add(a)
    assigned: set[int] = set()
    out_unit, out_rep = [], []
    for rep in order["unit"]:
        if rep in assigned:
            continue
        assigned.add(rep)
        star = [u for u in linked.get(rep, ()) if u not in assigned]
        assigned.update(star)
        if star or copies[rep] >= 2:
            out_unit.extend([rep, *star])
            out_rep.extend([rep] * (1 + len(star)))
    return pd.DataFrame({"unit": pd.Series(out_unit, dtype="int64"), "rep_unit": pd.Series(out_rep, dtype="int64")})

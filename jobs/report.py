"""report: self-contained HTML pages of the findings, with thumbnails, under <output>/report.

Extract: the result tables. Transform: pick the top items of each finding (at most
`report.max_per_section` per page, `report.max_pages` pages), make thumbnails of just those
images on the executors (pandas UDF over their bytes), collect that bounded set to the
driver. Load: `report/index.html` (summary, first page of every section, distribution
plots) and `report/<section>-<n>.html` for further pages. Images are inlined as data URIs,
so the folder opens from disk without a server; beyond the last page each section names
the table that holds everything.
"""
from __future__ import annotations

import argparse
import functools
import logging
import sys
from dataclasses import dataclass, field

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from sparkdup import decoded
from sparkdup import report_html as H
from sparkdup.contents import read_contents
from sparkdup.progress import track
from sparkdup.tables import hadoop_fs, read_table, table_path
from sparkdup.udfs.thumbnails import data_uri, thumbnail_data_uri

log = logging.getLogger("sparkdup")
FLAGS = ("dark", "bright", "blurry", "low_information", "tiny", "odd_aspect")
NEIGHBOURS_SHOWN = 3  # voters of a label issue, nearest neighbours of an outlier


@dataclass
class Section:
    """One finding: its items (each a function of thumbnails -> HTML) and the ids they show."""

    key: str  # file-name stem of its pages
    title: str
    total: int
    table: str  # the result table that holds all of it
    items: list = field(default_factory=list)  # callables: (thumbs, paths) -> html
    image_ids: set = field(default_factory=set)
    layout: str = "cards"  # cards (flowing thumbnails) | groups (one row per item) | table


def thumbnails(spark: SparkSession, output: str, images: DataFrame, ids: list[int], cfg: dict) -> dict[int, str]:
    """image_id -> data URI for the given images only: the thumbnails ingest made from the
    pixels it decoded (sparkdup.decoded), else made now from the files on the executors."""
    if not ids:
        return {}
    wanted = spark.createDataFrame([(int(i),) for i in ids], "image_id long")
    kept = decoded.thumbnails(spark, output, wanted)
    uris = {i: data_uri(jpeg) for i, jpeg in (kept or {}).items()}
    rest = [int(i) for i in ids if int(i) not in uris]  # after --append, ingest kept only the new files'
    if not rest:
        return uris
    wanted = spark.createDataFrame([(i,) for i in rest], "image_id long")
    side, limits = int(cfg["report"]["thumbnail_side"]), decoded.decode_limits(cfg)

    @pandas_udf(T.StringType())
    def thumb(content: pd.Series) -> pd.Series:
        return pd.Series([thumbnail_data_uri(c, side, limits) for c in content])

    contents = read_contents(spark, images.join(F.broadcast(wanted), "image_id").select("image_id", "path"),
                             cfg["decode"]["max_file_bytes"])
    if contents is None:
        return uris
    with track(spark, "making thumbnails", len(rest)):
        rows = contents.select("image_id", thumb.asNondeterministic()("content").alias("uri")).collect()
    return uris | {r.image_id: r.uri for r in rows if r.uri}


# ---------------------------------------------------------------- one function per finding
def member_evidence(m) -> list[str]:
    """What links a group member to its representative, one short line each."""
    if m.is_representative:
        return [f"{m.kind}, representative"]
    if m.evidence == "hash":
        return ["exact: same bytes as the representative"]
    return [f"{m.kind}, cosine {m.similarity_to_representative:.3f}",
            f"aligned pixels {m.align_fine_to_representative:.3f}, changed {m.align_changed_to_representative:.1%}, "
            f"worst tile {m.align_local_to_representative:.2f}"]


def duplicate_section(groups: DataFrame, limit: int, total: int) -> Section:
    sizes = groups.groupBy("group_id").count()
    top = [r.group_id for r in sizes.orderBy(F.desc("count"), "group_id").limit(limit).collect()]
    rows = groups.where(F.col("group_id").isin(top)).orderBy("group_id", F.desc("is_representative"), "path").toPandas()
    section = Section("duplicates", "Duplicate groups", total, "duplicate_groups", layout="groups")
    order = {gid: i for i, gid in enumerate(top)}
    for _, members in sorted(rows.groupby("group_id"), key=lambda g: order[g[0]]):
        members = list(members.itertuples())
        section.image_ids |= {m.image_id for m in members}
        section.items.append(lambda t, p, members=members: "".join(
            H.card(t.get(m.image_id), m.path, [*member_evidence(m), "keep" if m.is_representative else "duplicate"],
                   keep=bool(m.is_representative))
            for m in members))
    return section


def outlier_section(outliers: DataFrame, neighbors: DataFrame, limit: int, total: int) -> Section:
    rows = outliers.orderBy("rank").limit(limit).toPandas()
    shown = outliers.sparkSession.createDataFrame([(int(i),) for i in rows.image_id], "src long")
    near = (neighbors.where(F.col("rank") <= NEIGHBOURS_SHOWN).join(F.broadcast(shown), "src")
            .orderBy("src", "rank").toPandas())
    by_src = {src: list(g.itertuples()) for src, g in near.groupby("src")}
    section = Section("outliers", "Outliers", total, "outliers", layout="groups")
    for r in rows.itertuples():
        nbrs = by_src.get(r.image_id, [])
        section.image_ids |= {r.image_id} | {n.dst for n in nbrs}
        section.items.append(lambda t, p, r=r, nbrs=nbrs: H.card(
            t.get(r.image_id), r.path, [f"#{r.rank}", f"score {r.score:.2f}", r.reason])
            + "".join(H.card(t.get(n.dst), p.get(n.dst, ""), [f"neighbour {n.rank}", f"similarity {n.similarity:.3f}"],
                             minor=True) for n in nbrs))
    return section


def broken_section(images: DataFrame, limit: int, total: int) -> Section:
    rows = (images.where("status <> 'ok'").select("path", "status", "error").orderBy("path").limit(limit).toPandas()
            if total else pd.DataFrame())
    section = Section("broken", "Broken files", total, "images", layout="table")
    section.items = [lambda t, p, r=r: f"<tr><td>{H.esc(r.path)}</td><td>{H.esc(r.status)}</td>"
                                       f"<td>{H.esc(r.error)}</td></tr>" for r in rows.itertuples()]
    return section


def leak_section(leaks: DataFrame, limit: int, total: int) -> Section:
    rows = leaks.orderBy(F.desc("similarity"), "path_a").limit(limit).toPandas() if total else pd.DataFrame()
    section = Section("leaks", "Leaks between splits", total, "leaks", layout="groups")
    for r in rows.itertuples():
        section.image_ids |= {r.image_id_a, r.image_id_b}
        section.items.append(lambda t, p, r=r: H.card(t.get(r.image_id_a), r.path_a, [r.split_a])
                             + H.card(t.get(r.image_id_b), r.path_b, [r.split_b, f"similarity {r.similarity:.3f}"]))
    return section


def label_section(issues: DataFrame, limit: int, total: int) -> Section:
    rows = issues.orderBy("rank").limit(limit).toPandas() if total else pd.DataFrame()
    section = Section("labels", "Label issues", total, "label_issues", layout="groups")
    for r in rows.itertuples():
        voters = [int(v) for v in list(r.voters)[:NEIGHBOURS_SHOWN]]
        section.image_ids |= {r.image_id, *voters}
        section.items.append(lambda t, p, r=r, voters=voters: H.card(
            t.get(r.image_id), r.path, [f"#{r.rank} label {r.label}", f"suggested {r.suggested_label}",
                                        ", ".join(r.issues), r.reason])
            + "".join(H.card(t.get(v), p.get(v, ""), [f"voted {r.suggested_label}"], minor=True) for v in voters))
    return section


def flag_sections(images: DataFrame, limit: int, totals: dict) -> list[Section]:
    """One section per flag; the first `limit` flagged images of every flag (by path) come
    from one Spark job: a union of per-flag top-k queries (each bounded, none a full sort)."""
    raised = [f for f in FLAGS if totals[f]]
    cols = ("image_id", "path", "brightness", "blur", "entropy")
    tops = [images.where(F.array_contains("flags", f)).select(*cols).orderBy("path").limit(limit)
            .select(F.lit(f).alias("flag"), *cols) for f in raised]
    every = functools.reduce(DataFrame.unionByName, tops).toPandas() if tops else pd.DataFrame(columns=["flag"])
    rows_of = {f: g.sort_values("path") for f, g in every.groupby("flag")}
    sections = []
    for flag in FLAGS:
        rows = rows_of.get(flag, pd.DataFrame())
        section = Section(f"flag-{flag}", f"Flagged {flag}", int(totals[flag] or 0), "images")
        for r in rows.itertuples():
            section.image_ids.add(r.image_id)
            section.items.append(lambda t, p, r=r: H.card(
                t.get(r.image_id), r.path, [f"brightness {r.brightness:.0f}, blur {r.blur:.0f}, entropy {r.entropy:.2f}"]))
        sections.append(section)
    return sections


def distribution_plots(images: DataFrame, neighbors: DataFrame, outliers: DataFrame, cfg: dict, n_images: int) -> str:
    an, cap = cfg["analyze"], 200_000
    ok = images.where("status = 'ok'").select("brightness", "blur")
    stats = (ok if n_images <= cap else ok.sample(cap / n_images, seed=1)).toPandas()
    nearest = neighbors.where("rank = 1 AND source <> 'hash'").select("similarity").limit(cap).toPandas()
    return ("<h2>Distributions</h2>"
            + H.histogram_svg(nearest["similarity"], "Nearest-neighbour similarity",
                              {"verify from": an["duplicate_similarity"]})
            + H.histogram_svg(outliers.select("score").limit(cap).toPandas()["score"], "Outlier score")
            + H.histogram_svg(stats["brightness"], "Brightness")
            + H.histogram_svg(stats["blur"], "Blur (variance of Laplacian)",
                              {"blurry": cfg["ingest"]["flags"]["blurry_max"]}))


def totals(images: DataFrame, outliers: DataFrame, groups: DataFrame, leaks: DataFrame, issues: DataFrame) -> dict:
    """Every count the report shows, from one Spark query: each table's rows tagged with
    what they count (and the id to count once, where it is distinct ids), unioned and
    grouped. One action instead of one or more per count (a Spark job costs a round trip,
    and with adaptive execution a shuffle is a job of its own)."""
    none = F.lit(None).cast("long")

    def tag(df: DataFrame, what, key=none) -> DataFrame:
        return df.select((F.lit(what) if isinstance(what, str) else what).alias("what"), key.alias("key"))

    tagged = [tag(images, "images"), tag(images.where("status <> 'ok'"), "broken"),
              tag(images.where(F.size("flags") > 0), F.explode("flags")),
              tag(outliers.where("is_outlier"), "outliers"),
              tag(groups, "groups", F.col("group_id")), tag(groups.where("NOT is_representative"), "duplicates_to_remove"),
              tag(leaks, "leaks"), tag(leaks, "leaked_images", F.col("image_id_b")),
              tag(issues, "label_issues"), tag(issues, "label_issue_images", F.col("image_id"))]
    distinct = {"groups", "leaked_images", "label_issue_images"}
    rows = (functools.reduce(DataFrame.unionByName, tagged).groupBy("what")
            .agg(F.count("*").alias("rows"), F.countDistinct("key").alias("ids")).collect())
    got = {r.what: int(r.ids if r.what in distinct else r.rows) for r in rows}
    names = ("images", "broken", *FLAGS, "outliers", "groups", "duplicates_to_remove", "leaks", "leaked_images",
             "label_issues", "label_issue_images")
    return {name: got.get(name, 0) for name in names}


# ---------------------------------------------------------------- pages
def render_pages(section: Section, thumbs: dict, paths: dict, per_page: int) -> list[str]:
    """The section's HTML, one string per page (the first goes on index.html)."""
    items = [render(thumbs, paths) for render in section.items]
    chunks = [items[i:i + per_page] for i in range(0, len(items), per_page)] or [[]]
    pages = []
    for n, chunk in enumerate(chunks, 1):
        if section.layout == "table":
            body = f"<table><tr><th>path</th><th>status</th><th>error</th></tr>{''.join(chunk)}</table>"
        elif section.layout == "groups":
            body = "".join(f'<div class="group"><div class="cards">{c}</div></div>' for c in chunk)
        else:
            body = f'<div class="cards">{"".join(chunk)}</div>'
        nav = H.pager(section.key, n, len(chunks))
        pages.append(H.section(section.title, section.total, len(items), body, section.table, n, per_page) + nav)
    return pages


def page_name(key: str, n: int) -> str:
    return "index.html" if n == 1 else f"{key}-{n}.html"


def build_report(spark: SparkSession, cfg: dict, output: str) -> dict[str, str]:
    """file name -> HTML for every page of the report."""
    # Every section and the summary query these small tables several times: read each once
    # into memory (images without its pixel signatures, the one wide column).
    tables = [read_table(spark, output, "images").drop("signature"), read_table(spark, output, "outliers"),
              read_table(spark, output, "neighbors"), read_table(spark, output, "duplicate_groups"),
              read_table(spark, output, "leaks"), read_table(spark, output, "label_issues")]
    images, outliers, neighbors, groups, leaks, issues = [t.persist(StorageLevel.MEMORY_AND_DISK) for t in tables]
    try:
        return _pages(spark, cfg, output, images, outliers, neighbors, groups, leaks, issues)
    finally:
        for t in (images, outliers, neighbors, groups, leaks, issues):
            t.unpersist()


def _pages(spark: SparkSession, cfg: dict, output: str, images: DataFrame, outliers: DataFrame,
           neighbors: DataFrame, groups: DataFrame, leaks: DataFrame, issues: DataFrame) -> dict[str, str]:
    per_page = int(cfg["report"]["max_per_section"])
    limit = per_page * int(cfg["report"]["max_pages"])
    counts = totals(images, outliers, groups, leaks, issues)
    n_images = counts["images"]

    sections = [duplicate_section(groups, limit, counts["groups"]),
                outlier_section(outliers, neighbors, limit, counts["outliers"]),
                broken_section(images, limit, counts["broken"]), leak_section(leaks, limit, counts["leaks"]),
                label_section(issues, limit, counts["label_issues"]), *flag_sections(images, limit, counts)]
    ids = sorted({int(i) for s in sections for i in s.image_ids})
    thumbs = thumbnails(spark, output, images, ids, cfg)
    paths = dict(images.join(F.broadcast(spark.createDataFrame([(i,) for i in ids], "image_id long")), "image_id")
                 .select("image_id", "path").collect()) if ids else {}

    first, files = [], {}
    for section in sections:
        pages = render_pages(section, thumbs, paths, per_page)
        first.append(pages[0])
        for n, html in enumerate(pages[1:], 2):
            files[page_name(section.key, n)] = H.page(f"sparkdup report: {section.title}, page {n}", None, [html])
    first.append(distribution_plots(images, neighbors, outliers, cfg, n_images))

    summary = [("images", n_images),
               ("not readable", counts["broken"]),
               ("duplicates to remove", counts["duplicates_to_remove"]),
               ("outliers", counts["outliers"]),
               ("in a cross-split leak", counts["leaked_images"]),
               ("label issues", counts["label_issue_images"])]
    summary = [(name, count, count / n_images if n_images else 0.0) for name, count in summary]
    files["index.html"] = H.page("sparkdup report", summary, first)
    return files


def write_text(spark: SparkSession, path: str, text: str) -> None:
    fs, hpath = hadoop_fs(spark, path)
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    files = build_report(spark, cfg, args.output)
    folder = table_path(args.output, "report")
    fs, hpath = hadoop_fs(spark, folder)
    fs.delete(hpath, True)  # no stale pages from a bigger previous run
    for name, html in files.items():
        write_text(spark, f"{folder}/{name}", html)
    log.info("report: %s/index.html (%d page(s))", folder, len(files))
    return {"report_pages": len(files), "report_bytes": sum(len(h) for h in files.values())}


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))

"""report: a self-contained HTML page of the findings, with thumbnails, under <output>/report.

Extract: the result tables. Transform: pick the top items of each finding (capped by
`report.max_per_section`), make thumbnails of just those images on the executors (pandas
UDF over their bytes), collect that bounded set to the driver. Load: `report/index.html`,
one file with images inlined as data URIs, so it opens from disk without a server.
"""
from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from sparkdup import report_html as H
from sparkdup.contents import read_contents
from sparkdup.tables import hadoop_fs, read_table, table_path
from sparkdup.udfs.decode import Limits
from sparkdup.udfs.thumbnails import thumbnail_data_uri

log = logging.getLogger("sparkdup")
FLAGS = ("dark", "bright", "blurry", "low_information", "tiny", "odd_aspect")


def thumbnails(spark: SparkSession, images: DataFrame, ids: list[int], cfg: dict) -> dict[int, str]:
    """image_id -> data URI for the given images only, made on the executors."""
    if not ids:
        return {}
    side, ing = int(cfg["report"]["thumbnail_side"]), cfg["ingest"]
    limits = Limits(ing["max_file_bytes"], ing["max_pixels"], max_side=2 * side)

    @pandas_udf(T.StringType())
    def thumb(content: pd.Series) -> pd.Series:
        return pd.Series([thumbnail_data_uri(c, side, limits) for c in content])

    wanted = images.join(F.broadcast(spark.createDataFrame([(int(i),) for i in ids], "image_id long")), "image_id")
    contents = read_contents(spark, wanted.select("image_id", "path"), ing["max_file_bytes"])
    if contents is None:
        return {}
    rows = contents.select("image_id", thumb.asNondeterministic()("content").alias("uri")).collect()
    return {r.image_id: r.uri for r in rows if r.uri}


def build_report(spark: SparkSession, cfg: dict, output: str) -> str:
    n_max = int(cfg["report"]["max_per_section"])
    images = read_table(spark, output, "images")
    groups = read_table(spark, output, "duplicate_groups")
    outliers = read_table(spark, output, "outliers")
    leaks = read_table(spark, output, "leaks")
    issues = read_table(spark, output, "label_issues")
    n_images = images.count()

    top_groups = [r.group_id for r in groups.groupBy("group_id").count().orderBy(F.desc("count"), "group_id")
                  .limit(n_max).collect()]
    group_rows = groups.where(F.col("group_id").isin(top_groups)).orderBy("group_id", F.desc("is_representative"),
                                                                          "path").toPandas()
    out_rows = outliers.orderBy("rank").limit(n_max).toPandas()
    broken = images.where("status <> 'ok'").select("path", "status", "error").orderBy("path").limit(200).toPandas()
    leak_rows = leaks.orderBy(F.desc("similarity"), "path_a").limit(n_max).toPandas()
    issue_rows = issues.where("issue = 'neighbor_vote'").orderBy("rank").limit(n_max).toPandas()
    flag_rows = {f: images.where(F.array_contains("flags", f)).select("image_id", "path", "brightness", "blur",
                                                                     "entropy").limit(n_max // 2).toPandas()
                 for f in FLAGS}
    totals = images.agg(*[F.count_if(F.array_contains("flags", f)).alias(f) for f in FLAGS]).first()
    flag_totals = {f: int(totals[f] or 0) for f in FLAGS}  # one scan for all six counts

    ids = set(group_rows.image_id) | set(out_rows.image_id) | set(leak_rows.image_id_a) | set(leak_rows.image_id_b)
    ids |= set(issue_rows.image_id) | {v for vs in issue_rows.voters for v in list(vs)[:3]}
    for rows in flag_rows.values():
        ids |= set(rows.image_id)
    thumbs = thumbnails(spark, images, sorted(int(i) for i in ids), cfg)
    paths = dict(images.where(F.col("image_id").isin([int(i) for i in ids])).select("image_id", "path").collect()) \
        if ids else {}

    sections = []
    body = ""
    for gid, members in group_rows.groupby("group_id", sort=False):
        cards = "".join(H.card(thumbs.get(r.image_id), [r.path, f"{r.kind}, similarity {r.similarity_to_representative:.3f}",
                                                        "keep" if r.is_representative else "duplicate"],
                               keep=bool(r.is_representative)) for r in members.itertuples())
        body += f'<div class="group"><div class="cards">{cards}</div></div>'
    n_groups = groups.select("group_id").distinct().count()
    sections.append(H.section("Duplicate groups", n_groups, len(top_groups), body, "duplicate_groups"))
    cards = "".join(H.card(thumbs.get(r.image_id), [f"#{r.rank}", r.path, f"score {r.score:.3f}",
                                                    f"nearest similarity {r.nn_similarity:.3f}"])
                    for r in out_rows.itertuples())
    sections.append(H.section("Outliers", outliers.where("is_outlier").count(), len(out_rows),
                              f'<div class="cards">{cards}</div>', "outliers"))
    table = "".join(f"<tr><td>{H.esc(r.path)}</td><td>{H.esc(r.status)}</td><td>{H.esc(r.error)}</td></tr>"
                    for r in broken.itertuples())
    sections.append(H.section("Broken files", images.where("status <> 'ok'").count(), len(broken),
                              f"<table><tr><th>path</th><th>status</th><th>error</th></tr>{table}</table>", "images"))
    body = "".join(f'<div class="group"><div class="cards">'
                   f'{H.card(thumbs.get(r.image_id_a), [r.split_a, r.path_a])}'
                   f'{H.card(thumbs.get(r.image_id_b), [r.split_b, r.path_b, f"similarity {r.similarity:.3f}"])}'
                   f"</div></div>" for r in leak_rows.itertuples())
    sections.append(H.section("Leaks between splits", leaks.count(), len(leak_rows), body, "leaks"))
    body = ""
    for r in issue_rows.itertuples():
        voters = "".join(H.card(thumbs.get(v), ["voted", paths.get(v, "")]) for v in list(r.voters)[:3])
        body += (f'<div class="group"><div class="cards">'
                 f'{H.card(thumbs.get(r.image_id), [r.path, f"label {r.label}", f"suggested {r.suggested_label}", f"confidence {r.confidence:.2f}"])}'
                 f"{voters}</div></div>")
    sections.append(H.section("Label issues", issues.count(), len(issue_rows), body, "label_issues"))
    for flag in FLAGS:
        rows = flag_rows[flag]
        cards = "".join(H.card(thumbs.get(r.image_id), [r.path, f"brightness {r.brightness:.0f}, blur {r.blur:.0f}, "
                                                                f"entropy {r.entropy:.2f}"]) for r in rows.itertuples())
        sections.append(H.section(f"Flagged {flag}", flag_totals[flag], len(rows), f'<div class="cards">{cards}</div>',
                                  "images"))
    nb = read_table(spark, output, "neighbors").where("rank = 1 AND source <> 'hash'").select("similarity")
    an = cfg["analyze"]
    stats = images.where("status = 'ok'").select("brightness", "blur").toPandas() if n_images <= 200_000 else \
        images.where("status = 'ok'").select("brightness", "blur").sample(200_000 / n_images, seed=1).toPandas()
    plots = (H.histogram_svg([r[0] for r in nb.limit(200_000).collect()], "Nearest-neighbour similarity",
                             {"duplicate": an["duplicate_similarity"], "verify from": an["verify_min_similarity"]})
             + H.histogram_svg(outliers.select("score").limit(200_000).toPandas()["score"], "Outlier score")
             + H.histogram_svg(stats["brightness"], "Brightness")
             + H.histogram_svg(stats["blur"], "Blur (variance of Laplacian)", {"blurry": cfg["ingest"]["flags"]["blurry_max"]}))
    sections.append("<h2>Distributions</h2>" + plots)

    summary = [("images", n_images, 1.0),
               ("not readable", images.where("status <> 'ok'").count(), 0),
               ("duplicates to remove", groups.where("NOT is_representative").count(), 0),
               ("outliers", outliers.where("is_outlier").count(), 0),
               ("in a cross-split leak", leaks.select("image_id_b").distinct().count(), 0),
               ("label issues", issues.select("image_id").distinct().count(), 0)]
    summary = [(name, count, count / n_images if n_images else 0.0) for name, count, _ in summary]
    return H.page("sparkdup report", summary, sections)


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
    page = build_report(spark, cfg, args.output)
    path = table_path(args.output, "report") + "/index.html"
    write_text(spark, path, page)
    log.info("report: %s", path)
    return {"report_bytes": len(page)}


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))

"""Label issues: labels the data disagrees with, by confident learning plus two kinds of
evidence that stay beside it.

- `confident_learning` (Northcutt, Jiang and Chuang, JAIR 70, 2021): out-of-sample class
  probabilities (sparkdup.findings.label_model, MLlib, K-fold cross-fitted), mixed with the
  neighbours' similarity-weighted vote (analyze.label_vote_weight); per-class thresholds
  t_j = the mean probability of class j over the images labelled j; an image is an issue
  when, among the classes whose probability reaches their threshold, the most probable is
  not its given label (an off-diagonal entry of the paper's confident joint), or when the
  most probable class is not (the paper's C_confusion); the most probable other class is
  the suggestion. Issues rank
  by label_quality: the self-confidence (probability of the given label) or the normalised
  margin (analyze.label_rank_by).
- `neighbor_vote`: its neighbours' vote alone disagrees (share >= label_min_confidence).
- `mixed_duplicate_group`: its duplicate group carries several labels and the majority
  is another one.
- `rare_label`: its label has fewer than label_min_class_size images (a label seen once):
  no model can learn that class, so the row says so and suggests the best other class.

One row per image with `issue` (the strongest kind that fired) and `issues` (all of them).
Unlabelled images are skipped. The rank is global, from sparkdup.findings.ranking.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from sparkdup.findings.label_model import model_probabilities
from sparkdup.findings.ranking import add_rank

KINDS = ("confident_learning", "neighbor_vote", "mixed_duplicate_group", "rare_label")  # strongest first


def neighbour_votes(images: DataFrame, neighbors: DataFrame, an: dict) -> DataFrame:
    """Per image (src): each label its label_vote_k nearest neighbours vote for, with the
    vote's share of the total weight (similarity ** label_vote_power: the nearest count
    most) and the voters' ids. Neighbours below label_min_similarity and unlabelled ones
    do not vote."""
    labelled = images.where(F.col("label").isNotNull()).select(F.col("image_id").alias("dst"), F.col("label").alias("vote"))
    nearest = Window.partitionBy("src").orderBy(F.col("similarity").desc(), F.col("dst"))
    votes = (neighbors.where(F.col("similarity") >= an["label_min_similarity"])
             .withColumn("_r", F.row_number().over(nearest)).where(F.col("_r") <= int(an["label_vote_k"]))
             .join(labelled, "dst")
             .groupBy("src", "vote").agg(F.sum(F.pow("similarity", float(an["label_vote_power"]))).alias("weight"),
                                         F.sort_array(F.collect_list("dst")).alias("voters")))
    return votes.withColumn("share", F.col("weight") / F.sum("weight").over(Window.partitionBy("src")))


def label_votes(images: DataFrame, votes: DataFrame, an: dict) -> DataFrame:
    """Images whose neighbours' top vote is another label with share >= label_min_confidence:
    (image_id, vote, vote_share)."""
    best = Window.partitionBy("src").orderBy(F.col("weight").desc(), F.col("vote"))
    top = votes.withColumn("_r", F.row_number().over(best)).where(F.col("_r") == 1)
    return (images.where(F.col("label").isNotNull()).select("image_id", "label")
            .join(top.withColumnRenamed("src", "image_id"), "image_id")
            .where((F.col("vote") != F.col("label")) & (F.col("share") >= an["label_min_confidence"]))
            .select("image_id", F.col("vote").alias("vote_label"), F.col("share").alias("vote_top_share")))


def mixed_label_groups(groups: DataFrame) -> DataFrame:
    """Members of duplicate groups with several labels whose own label is not the group's
    majority: (image_id, group_id, group_label, group_share)."""
    g = groups.where(F.col("label").isNotNull())
    counts = g.groupBy("group_id", "label").agg(F.count(F.lit(1)).alias("n"))
    majority = (counts.withColumn("share", F.col("n") / F.sum("n").over(Window.partitionBy("group_id")))
                .withColumn("labels", F.count(F.lit(1)).over(Window.partitionBy("group_id")))
                .withColumn("r", F.row_number().over(Window.partitionBy("group_id")
                                                     .orderBy(F.col("n").desc(), F.col("label"))))
                .where((F.col("r") == 1) & (F.col("labels") > 1))
                .select("group_id", F.col("label").alias("group_label"), F.col("share").alias("group_share")))
    return (g.join(majority, "group_id").where(F.col("label") != F.col("group_label"))
            .select("image_id", "group_id", "group_label", "group_share"))


def vote_probabilities(probs: DataFrame, votes: DataFrame, names: list[str], weight: float) -> DataFrame:
    """probs mixed with the neighbour vote: (1 - weight) * model + weight * vote shares,
    per class in `names` order, for images that have votes (others keep the model's)."""
    if weight <= 0:
        return probs.withColumn("mixed", F.col("probs"))
    index = probs.sparkSession.createDataFrame([(lab, i) for i, lab in enumerate(names)], "vote string, idx int")
    shares = (votes.join(F.broadcast(index), "vote")
              .groupBy(F.col("src").alias("image_id"))
              .agg(F.map_from_entries(F.collect_list(F.struct("idx", "share"))).alias("_q")))
    mixed = F.transform("probs", lambda p, j: F.lit(1.0 - weight) * p + F.lit(weight) * F.coalesce(F.element_at("_q", j), F.lit(0.0)))
    return (probs.join(shares, "image_id", "left")
            .withColumn("mixed", F.when(F.col("_q").isNull(), F.col("probs")).otherwise(mixed)).drop("_q"))


def confident_learning(probs: DataFrame, names: list[str], an: dict) -> DataFrame:
    """Per labelled image with model probabilities: (image_id, given_idx, p_given, p_best,
    best_idx, cl_issue, label_quality). probs has image_id, label, probs (model), mixed
    (what thresholds and ranking use)."""
    name_idx = F.create_map(*[x for i, lab in enumerate(names) for x in (F.lit(lab), F.lit(i))])
    m = probs.withColumn("given_idx", F.element_at(name_idx, F.col("label")))
    # per-class threshold: mean probability of class j over the images labelled j (C numbers)
    t_rows = (m.where(F.col("given_idx").isNotNull())
              .groupBy("given_idx").agg(F.avg(F.element_at("mixed", F.col("given_idx") + 1)).alias("t")).collect())
    t = {int(r["given_idx"]): float(r["t"]) for r in t_rows}
    thresholds = F.array(*[F.lit(t.get(i, 1.0)) for i in range(len(names))])
    given = F.col("given_idx")
    p_given = F.element_at("mixed", given + 1)
    # most probable other class, and most probable class among those at their threshold
    other = F.array_max(F.transform("mixed", lambda p, j: F.struct(
        F.when(given.isNull() | (j != given), p).otherwise(F.lit(-1.0)).alias("p"), j.alias("j"))))
    confident = F.array_max(F.transform("mixed", lambda p, j: F.struct(
        F.when(p >= F.element_at(thresholds, j + 1), p).otherwise(F.lit(-1.0)).alias("p"), j.alias("j"))))
    top = F.array_max(F.transform("mixed", lambda p, j: F.struct(p.alias("p"), j.alias("j"))))
    off_diagonal = (confident["p"] >= 0) & (confident["j"] != given)
    cl = given.isNotNull() & (off_diagonal | (top["j"] != given))
    margin = (p_given - other["p"] + 1.0) / 2.0  # normalised margin, mapped to 0-1
    quality = p_given if an["label_rank_by"] == "self_confidence" else margin
    # the suggestion: the most probable other class (a class the model barely learnt has a
    # tiny threshold that nearly every image reaches, so "the most probable class at its
    # threshold" would name it on probabilities of 0.001)
    suggested = other["j"]
    return m.select("image_id", "given_idx", p_given.alias("p_given_mixed"), cl.alias("cl_issue"),
                    quality.alias("label_quality"), suggested.alias("model_idx"),
                    F.element_at("mixed", suggested + 1).alias("p_suggested_mixed"),
                    F.element_at("probs", given + 1).alias("p_given"),
                    F.element_at("probs", suggested + 1).alias("p_suggested"))


def _fmt(c: Column) -> Column:
    return F.format_number(c, 2)


def label_issues(images: DataFrame, neighbors: DataFrame, embeddings: DataFrame, groups: DataFrame,
                 an: dict) -> DataFrame:
    """One row per labelled image that any rule flags (see the module doc), ranked."""
    labelled = images.where(F.col("label").isNotNull()).select("image_id", "path", "label")
    votes = neighbour_votes(images, neighbors, an)
    probs, names, counts = model_probabilities(images, embeddings, groups, an)
    min_size = int(an["label_min_class_size"])
    rare = [lab for lab, n in counts.items() if n < min_size]
    base = labelled
    if probs is not None:
        mixed = vote_probabilities(probs, votes, names, float(an["label_vote_weight"]))
        cl = confident_learning(mixed, names, an)
        name_of = F.element_at(F.array(*[F.lit(n) for n in names]), F.col("model_idx") + 1)
        base = base.join(cl.withColumn("model_label", name_of), "image_id", "left")
    else:
        base = base.select("*", *[F.lit(None).cast(t).alias(c) for c, t in (
            ("cl_issue", "boolean"), ("label_quality", "double"), ("model_label", "string"), ("p_given", "double"),
            ("p_suggested", "double"), ("p_suggested_mixed", "double"), ("p_given_mixed", "double"))])
    base = (base.join(label_votes(images, votes, an), "image_id", "left")
            .join(mixed_label_groups(groups), "image_id", "left")
            .withColumn("rare", F.col("label").isin(rare) if rare else F.lit(False)))
    fired = {"confident_learning": F.coalesce(F.col("cl_issue"), F.lit(False)),
             "neighbor_vote": F.col("vote_label").isNotNull(),
             "mixed_duplicate_group": F.col("group_label").isNotNull(),
             "rare_label": F.col("rare")}
    issues = F.array_compact(F.array(*[F.when(c, F.lit(k)) for k, c in fired.items()]))
    flagged = base.withColumn("issues", issues).where(F.size("issues") > 0)
    suggested = (F.when(fired["confident_learning"] | fired["rare_label"], F.col("model_label"))
                 .when(fired["neighbor_vote"], F.col("vote_label")).otherwise(F.col("group_label")))
    flagged = flagged.withColumn("suggested_label", F.coalesce(suggested, F.col("model_label")))
    vote_of = (votes.groupBy(F.col("src").alias("image_id"))
               .agg(F.map_from_entries(F.collect_list(F.struct("vote", F.struct("share", "voters")))).alias("_v")))
    flagged = flagged.join(vote_of, "image_id", "left").withColumn("_sv", F.element_at("_v", F.col("suggested_label")))
    confidence = F.coalesce(F.when(F.col("model_label") == F.col("suggested_label"), F.col("p_suggested_mixed")),
                            F.col("_sv.share"), F.col("group_share"))
    reason = F.concat_ws("; ", *[
        F.when(fired["confident_learning"], F.concat(F.lit("classifier: '"), F.col("model_label"), F.lit("' "),
                                                     _fmt(F.col("p_suggested")), F.lit(" vs given "), _fmt(F.col("p_given")))),
        F.when(F.col("_sv").isNotNull(), F.concat(F.lit("neighbours: '"), F.col("suggested_label"), F.lit("' "),
                                                  _fmt(F.col("_sv.share")), F.lit(" of the vote"))),
        F.when(fired["mixed_duplicate_group"], F.concat(F.lit("duplicate group's majority: '"), F.col("group_label"),
                                                        F.lit("'"))),
        F.when(fired["rare_label"], F.concat(F.lit("label '"), F.col("label"),
                                             F.lit(f"' has fewer than {min_size} images: no model can learn it")))])
    primary = F.coalesce(*[F.when(fired[k], F.lit(k)) for k in KINDS])
    rows = flagged.select(
        "image_id", "path", "label", "suggested_label", F.round("label_quality", 6).alias("label_quality"),
        F.round("p_given", 6).alias("p_given"), F.round("p_suggested", 6).alias("p_suggested"),
        F.round(F.col("_sv.share"), 6).alias("vote_share"), F.round(confidence, 6).alias("confidence"),
        primary.alias("issue"), "issues", F.col("group_id").cast("long").alias("group_id"),
        F.coalesce(F.col("_sv.voters"), F.array().cast("array<bigint>")).alias("voters"), reason.alias("reason"),
        # rank key: the model's label quality, else 1 - the evidence's share (rules without a model)
        F.coalesce(F.col("label_quality"), 1.0 - confidence, F.lit(1.0)).alias("_key")).checkpoint(eager=True)
    return add_rank(rows, "_key", "image_id", descending=False).drop("_key", "percentile").select(
        "image_id", "path", "label", "suggested_label", "label_quality", "p_given", "p_suggested", "vote_share",
        "confidence", "rank", "issue", "issues", "group_id", "voters", "reason")

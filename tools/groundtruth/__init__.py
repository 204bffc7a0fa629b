"""Ground truth for sparkdup: a generator of messy labelled image datasets with known
duplicates, look-alikes (hard negatives), leaks, broken files, outliers and flipped
labels, and a scorer that compares sparkdup's result tables against it. Used from the
checkout (tests, benchmarks, the quickstart); never installed or shipped to a cluster.

    python -m tools.groundtruth.generate OUT --originals N     (from the repo root)
    python -m tools.groundtruth.score OUT RESULTS

    from tools.groundtruth.generate import generate
    from tools.groundtruth.score import load_tables, score

Modules: ``sources`` (which Debian packages, classes and look-alike sets), ``images``
(thumbnail filter, edits, anomalies), ``plan`` (pure: which source becomes which file),
``generate`` (the write step and the CLI), ``score``.

(The functions are not re-exported here on purpose: a package attribute named
``generate`` would shadow the ``generate`` submodule.)
"""

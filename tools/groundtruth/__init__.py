"""Ground truth for sparkdup: a generator of messy labelled image datasets with known
duplicates, leaks, broken files, outliers and flipped labels, and a scorer that compares
sparkdup's result tables against it.

    from tools.groundtruth.generate import generate
    from tools.groundtruth.score import load_tables, score

(The functions are not re-exported here on purpose: a package attribute named
``generate`` would shadow the ``generate`` submodule.)
"""

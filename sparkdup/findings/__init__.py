"""The analyze stage's findings, one module per family (duplicates, outliers, leaks, labels).

Each module holds pure functions of DataFrames and settings; jobs/analyze.py only reads the
input tables, calls them and writes the results.
"""

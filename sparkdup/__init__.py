"""sparkdup: find what is wrong with large image datasets, on Apache Spark.

From Python (notebooks): ``sparkdup.run(input, output)`` and one function per stage
(``ingest``, ``embed``, ``neighbors``, ``analyze``, ``report``, ``export``) and
``search``, see
:mod:`sparkdup.api`. They are loaded on first use, so ``import sparkdup`` stays cheap.
"""
__version__ = "0.1.0"

_API = ("run", "ingest", "embed", "neighbors", "analyze", "report", "export", "search", "checked_settings", "Result")


def __getattr__(name: str):
    if name in _API:
        from sparkdup import api

        return getattr(api, name)
    raise AttributeError(f"module 'sparkdup' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_API))

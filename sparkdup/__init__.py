"""sparkdup: find what is wrong with large image datasets, on Apache Spark."""
__version__ = "0.1.0"

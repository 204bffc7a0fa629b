#!/usr/bin/env bash
# One-time (and idempotent) setup of a development or CI machine:
#   - Debian packages: real test images (openclipart-png, oxygen-icon-theme), and the
#     look-alike sources of the ground-truth generator (tools/groundtruth/sources.py): game
#     sprites (supertux-data, hedgewars-data, freeciv-data, pingus-data) and whole icon
#     themes (papirus-icon-theme, breeze-icon-theme, tango-icon-theme)
#   - a virtualenv in .venv with the pinned Python packages (scripts/requirements.txt)
#   - a cached pyspark wheel (pyspark ships only a 450 MB sdist) and a portable annoy wheel
#   - the JVM jars (Delta; GraphFrames from the registry or ../shared/jars) in the jar cache
#   - the default embedding model, built once into the model cache
# A second run finds everything in place and changes nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
cache="${SPARKDUP_CACHE:-$HOME/.cache/sparkdup}"
wheels="$cache/wheels"; jars="$cache/jars"
mkdir -p "$wheels" "$jars"
say() { printf '[setup] %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------
need_apt=()
for pkg in openclipart-png oxygen-icon-theme; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
need_img=()  # image data only: installed without the games and tools they recommend
for pkg in supertux-data hedgewars-data freeciv-data pingus-data papirus-icon-theme breeze-icon-theme \
    tango-icon-theme; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_img+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ] || [ ${#need_img[@]} -gt 0 ]; then
  say "apt-get install ${need_apt[*]} ${need_img[*]}"
  apt-get update -qq
  [ ${#need_apt[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  [ ${#need_img[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need_img[@]}" >/dev/null
fi

# --- Python ----------------------------------------------------------------
[ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
py=.venv/bin/python
$py -m pip install -q --upgrade pip wheel setuptools
pin() { grep -E "^$1==" scripts/requirements.txt | head -1; }
if ! ls "$wheels"/pyspark-"$(pin pyspark | cut -d= -f3)"-*.whl >/dev/null 2>&1; then
  say "building the pyspark wheel once (several minutes)"
  $py -m pip wheel -q --no-deps "$(pin pyspark)" -w "$wheels"
fi
annoy_v="$(pin annoy | cut -d= -f3)"
if ! ls "$wheels"/annoy-"$annoy_v"-*.whl >/dev/null 2>&1; then
  # annoy compiles with -march=native by default: a build from one CPU can crash an
  # executor on another. Build for the x86-64-v2 baseline instead.
  say "building a portable annoy wheel"
  ANNOY_COMPILER_ARGS="-D_CRT_SECURE_NO_WARNINGS,-DANNOYLIB_MULTITHREADED_BUILD,-O3,-march=x86-64-v2,-mtune=generic" \
    $py -m pip wheel -q --no-cache-dir --no-deps --no-binary annoy "annoy==$annoy_v" -w "$wheels"
    $py -m pip install -q --no-index --find-links "$wheels" --force-reinstall --no-deps "annoy==$annoy_v"
fi
$py -m pip install -q --find-links "$wheels" -r scripts/requirements.txt
$py -m pip install -q --no-deps --no-build-isolation -e .

# --- JVM jars --------------------------------------------------------------
if ! ls "$jars"/delta-spark_2.13-*.jar >/dev/null 2>&1; then
  say "fetching Delta jars with mvn"
  mvn -q -f scripts/jars/pom.xml dependency:copy-dependencies -DoutputDirectory="$jars" \
      -DincludeScope=runtime -DexcludeGroupIds=org.apache.spark,org.scala-lang,org.antlr
fi
# GraphFrames: Maven, else the checked jar in ../shared/jars, else none (built-in algorithms)
bash scripts/install_graphframes.sh "$jars"

# S3A connector for s3a:// paths in local mode (docs/cluster.md, "Object storage"): kept in
# its own folder because the AWS SDK bundle alone is 558 MB; the local session puts these
# on the JVM classpath (not spark.jars), so nothing is copied; classes load only when used.
jars_s3="$cache/jars-s3"
if ! ls "$jars_s3"/hadoop-aws-*.jar >/dev/null 2>&1; then
  say "fetching the S3A connector (hadoop-aws, AWS SDK bundle) with mvn"
  rm -rf "$jars_s3.partial"  # copied aside and moved in whole: a cut download is never used
  mvn -q -f scripts/jars/s3/pom.xml dependency:copy-dependencies -DoutputDirectory="$jars_s3.partial" \
      -DincludeScope=runtime
  rm -rf "$jars_s3" && mv "$jars_s3.partial" "$jars_s3"
fi

# --- default model ---------------------------------------------------------
if $py -c "import sparkdup.models.build_cache" >/dev/null 2>&1; then
  $py -m sparkdup.models.build_cache
fi
say "ready: . .venv/bin/activate && sparkdup --help"

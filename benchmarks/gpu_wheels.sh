#!/usr/bin/env bash
# Fetches, here (where pip reaches the package registries), the wheels in benchmarks/gpu_wheels.txt for the
# GPU machine (x86-64, CPython 3.12), into .whl/ (git-ignored). The device call then carries `.whl` and
# benchmarks/gpu_suite.sh installs them before it runs anything:
#   bash benchmarks/gpu_wheels.sh [DEST]        (default .whl)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-.whl}"
PYTHON="${PYTHON:-python3}"
mapfile -t WHEELS < <(grep -v '^\s*#' benchmarks/gpu_wheels.txt | grep -v '^\s*$')
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$DEST" "${WHEELS[@]}"
ls -l "$DEST"

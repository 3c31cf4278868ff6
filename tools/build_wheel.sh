#!/usr/bin/env bash
# Build a manylinux wheel on this Linux machine the way cibuildwheel does
# ([tool.cibuildwheel] in pyproject.toml): the bundled ggml, `pip wheel`,
# `auditwheel repair` (needs patchelf), then optionally the test suite against
# the wheel installed in a fresh virtual environment.
#
#   tools/build_wheel.sh OUT_DIR [--test]
#
# MIMO_GGML_PREFIX: a ggml prefix from tools/build_ggml.sh (default: build one
# in OUT_DIR/ggml-prefix first; that takes long: 14 CPU variants).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
py="${PYTHON:-python3}"
export MIMO_GGML_BUNDLE_GGML=1
export MIMO_GGML_PREFIX="${MIMO_GGML_PREFIX:-$out/ggml-prefix}"
if [ ! -f "$MIMO_GGML_PREFIX/include/ggml.h" ]; then
  bash "$here/tools/build_ggml.sh" "$MIMO_GGML_PREFIX"
fi
rm -rf "$out/dist" "$out/wheelhouse"
"$py" -m pip wheel "$here" --no-deps -w "$out/dist"
# the tag follows the toolchain: manylinux_2_28 in cibuildwheel's manylinux_2_28 image, the
# host's glibc elsewhere (MIMO_WHEEL_PLAT forces one)
"$py" -m auditwheel repair --exclude 'libggml*' ${MIMO_WHEEL_PLAT:+--plat "$MIMO_WHEEL_PLAT"} -w "$out/wheelhouse" "$out"/dist/mimo_ggml-*.whl
ls -l "$out/wheelhouse"
if [ "${1:-}" = "--test" ]; then
  "$py" -m venv "$out/venv-test"
  "$out/venv-test/bin/pip" install -q "$(ls "$out"/wheelhouse/mimo_ggml-*.whl)[test]"
  "$out/venv-test/bin/python" "$here/tools/test_wheel.py" "$here"
fi

#!/usr/bin/env bash
# Build the dispatching ggml that mimo-ggml wheels bundle, from the pinned
# libggml-python sdist (no ggml source lives in this repository).
#
#   tools/build_ggml.sh PREFIX [extra cmake -D options...]
#
# Environment:
#   MIMO_GGML_SDIST   an already downloaded libggml_python-*.tar.gz (else pip downloads it)
#   MIMO_GGML_JOBS    parallel compile jobs (default 2)
#   MIMO_GGML_WORK    scratch folder (default: a temporary folder)
#
# Result: PREFIX/lib (or lib64) holds libggml + libggml-base (baseline ISA)
# and the backend modules (every CPU variant on x86_64, RPC; CUDA/Metal when
# asked for with -DGGML_CUDA=ON / -DGGML_METAL=ON), all with $ORIGIN rpaths;
# PREFIX/include the headers and the CMake package for find_package(ggml).
set -euo pipefail
PIN="libggml-python==0.20.2.post1"
prefix="$(mkdir -p "$1" && cd "$1" && pwd)"; shift
jobs="${MIMO_GGML_JOBS:-2}"
work="${MIMO_GGML_WORK:-$(mktemp -d)}"
mkdir -p "$work"
py="${PYTHON:-python3}"

sdist="${MIMO_GGML_SDIST:-}"
if [ -z "$sdist" ]; then
  "$py" -m pip download --no-deps --no-binary libggml-python "$PIN" -d "$work/sdist" >&2
  sdist="$(ls "$work"/sdist/libggml_python-*.tar.gz | head -n1)"
fi
tar -xzf "$sdist" -C "$work"
src="$(ls -d "$work"/libggml_python-*/ggml | head -n1)"

arch="$(uname -m)"
variants=OFF
case "$arch" in x86_64|AMD64|amd64) variants=ON ;; esac
case "$(uname -s)" in
  Darwin) rpath='@loader_path' ;;
  *) rpath='$ORIGIN' ;;
esac

gen=()
if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
cmake -S "$src" -B "$work/build" "${gen[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_INSTALL_LIBDIR=lib \
  -DCMAKE_INSTALL_RPATH="$rpath" \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
  -DBUILD_SHARED_LIBS=ON \
  -DGGML_BACKEND_DL=ON \
  -DCMAKE_INSTALL_BINDIR=lib \
  -DGGML_CPU_ALL_VARIANTS="$variants" \
  -DGGML_NATIVE=OFF \
  -DGGML_RPC=ON \
  -DGGML_OPENMP="${MIMO_GGML_OPENMP:-OFF}" \
  -DGGML_CCACHE=OFF \
  -DGGML_BUILD_TESTS=OFF \
  -DGGML_BUILD_EXAMPLES=OFF \
  "$@"
cmake --build "$work/build" --config Release -j "$jobs"
cmake --install "$work/build" --config Release
echo "ggml installed in $prefix" >&2

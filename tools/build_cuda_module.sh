#!/usr/bin/env bash
# Build ggml's CUDA backend as a loadable module for a dispatching mimo-ggml
# (a wheel), from the same pinned libggml-python sdist, on a machine with no
# GPU and no system CUDA: nvcc, the CUDA runtime and cuBLAS come from NVIDIA's
# PyPI packages. CUDA 13's (`nvidia-cuda-nvcc==13.0.*` and friends, one
# toolkit tree under nvidia/cu13) carry nvcc itself; the recent -cu12 nvcc
# packages carry only ptxas.
#
#   tools/build_cuda_module.sh PREFIX [CUDA_ARCHITECTURES]   # default "75-virtual;80-virtual;86-real;89-real;90"
#   tools/build_cuda_module.sh --install PREFIX               # copy the module into this Python's mimo_ggml/ggml/
#
# Environment: MIMO_CUDA_VENV (where the toolkit packages go; default
# PREFIX/cuda-toolkit-venv), MIMO_GGML_JOBS / MIMO_GGML_SDIST as for
# tools/build_ggml.sh, PYTHON (the interpreter of the mimo-ggml install for
# --install).
#
# The module, PREFIX/lib/libggml-cuda.so, finds the CUDA runtime and cuBLAS at
# run time in the site-packages' nvidia/cu13/lib beside mimo_ggml (rpath), so
# the machine that runs it needs `pip install "nvidia-cuda-runtime==13.0.*"
# "nvidia-cublas==13.0.*"` and an NVIDIA driver for CUDA 13. It is built
# without CUDA VMM (GGML_CUDA_NO_VMM), so it does not link the driver
# library: it loads on a machine without a driver and reports no device.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python3}"

usage="usage: tools/build_cuda_module.sh PREFIX [CUDA_ARCHITECTURES] | --install PREFIX"
if [ $# -lt 1 ] || { [ "$1" = "--install" ] && [ $# -lt 2 ]; }; then echo "$usage" >&2; exit 2; fi
if [ "$1" = "--install" ]; then
  module="$2/lib/libggml-cuda.so"
  [ -f "$module" ] || { echo "no $module: build it first (tools/build_cuda_module.sh $2)" >&2; exit 1; }
  dest="$("$py" -c 'import mimo_ggml, os; print(os.path.join(os.path.dirname(mimo_ggml.__file__), "ggml"))')"
  [ -d "$dest" ] || { echo "$dest does not exist: that mimo-ggml is a source build, not a dispatching one" >&2; exit 1; }
  cp "$module" "$dest/"
  echo "installed $module in $dest" >&2
  exit 0
fi

prefix="$(mkdir -p "$1" && cd "$1" && pwd)"
archs="${2:-75-virtual;80-virtual;86-real;89-real;90}"
venv="${MIMO_CUDA_VENV:-$prefix/cuda-toolkit-venv}"
if [ ! -x "$venv/bin/python" ]; then "$py" -m venv "$venv"; fi
# nvcc's own parts (cicc in nvvm, the crt headers) are pinned too: unpinned, pip takes a newer
# nvvm whose PTX this ptxas rejects ("Unsupported .version")
"$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" \
  "nvidia-cuda-runtime==13.0.*" "nvidia-cublas==13.0.*" "nvidia-cuda-cccl==13.0.*"
root="$("$venv/bin/python" -c 'import nvidia.cu13 as m; print(list(m.__path__)[0])')"
# the packages hold lib/ and only the versioned libraries; nvcc looks in lib64/, the linker for
# the plain names
[ -e "$root/lib64" ] || ln -s lib "$root/lib64"
for lib in cudart cublas cublasLt; do
  [ -e "$root/lib/lib$lib.so" ] || ln -s "lib$lib.so.13" "$root/lib/lib$lib.so"
done

# shellcheck disable=SC2016  # $ORIGIN is for the dynamic loader, not the shell
CUDACXX="$root/bin/nvcc" bash "$here/tools/build_ggml.sh" "$prefix" \
  -DGGML_CUDA=ON -DGGML_CUDA_NO_VMM=ON \
  -DGGML_CPU_ALL_VARIANTS=OFF \
  -DCUDAToolkit_ROOT="$root" \
  -DCMAKE_CUDA_COMPILER="$root/bin/nvcc" \
  -DCMAKE_CUDA_ARCHITECTURES="$archs" \
  -DCMAKE_INSTALL_RPATH='$ORIGIN;$ORIGIN/../../nvidia/cu13/lib'
ls -l "$prefix/lib/libggml-cuda.so"

"""Information about this build and machine: ggml version, devices, CPU
features, and the instruction sets the CPU has but the loaded ggml was not
built for (the PyPI wheel of ggml is a portable AVX2 build)."""

from __future__ import annotations

from . import _core

# /proc/cpuinfo flag -> the feature name ggml's CPU backend reports when built for it
_X86_FEATURES = {
    "avx512f": "AVX512",
    "avx512vbmi": "AVX512_VBMI",
    "avx512_vnni": "AVX512_VNNI",
    "avx512_bf16": "AVX512_BF16",
    "avx_vnni": "AVX_VNNI",
    "amx_int8": "AMX_INT8",
}


# ggml uses the 512-bit form where it has it: AVX-VNNI (VEX) adds nothing to AVX512_VNNI
_COVERED_BY = {"AVX_VNNI": {"AVX512_VNNI"}}


def native_build_command(bundled: bool | None = None) -> str:
    """The pip command that builds a ggml for this CPU: for a source build,
    the installed libggml-python rebuilt natively; for a wheel with its own
    dispatching ggml, mimo-ggml rebuilt from source with a native CPU module."""
    from importlib.metadata import PackageNotFoundError, version

    if bundled is None:
        bundled = bool(_core.system_info().get("build", {}).get("bundled_ggml"))
    if bundled:
        return ("MIMO_GGML_BUNDLE_GGML=1 pip install --force-reinstall --no-binary mimo-ggml "
                "-C cmake.define.MIMO_GGML_NATIVE_CPU=ON mimo-ggml")
    try:
        pin = "==" + version("libggml-python")
    except PackageNotFoundError:  # a ggml of one's own (MIMO_GGML_PREFIX): name the package unpinned
        pin = ""
    return ("pip install --force-reinstall --no-deps --no-binary libggml-python "
            f"-C cmake.define.GGML_NATIVE=ON libggml-python{pin}")


def _cpu_flags(cpuinfo_text: str | None = None) -> set[str]:
    if cpuinfo_text is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo_text = f.read()
        except OSError:  # not Linux: nothing to compare with
            return set()
    for line in cpuinfo_text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def unused_cpu_features(ggml_cpu_features: dict | None = None, cpuinfo_text: str | None = None) -> list[str]:
    """Instruction sets (ggml's names) this CPU has but the loaded ggml CPU
    backend was not compiled for; empty when it uses everything it knows."""
    if ggml_cpu_features is None:
        ggml_cpu_features = _core.system_info()["features"].get("CPU", {})
    built = {k for k, v in ggml_cpu_features.items() if str(v) not in ("0", "")}
    flags = _cpu_flags(cpuinfo_text)
    return [name for flag, name in _X86_FEATURES.items()
            if flag in flags and name not in built and not (_COVERED_BY.get(name, set()) & built)]


def system_info() -> dict:
    """Return a dict with ``version`` (mimo-ggml), ``ggml_version``, ``ggml_commit``, ``devices`` (name,
    description, type, memory), ``features`` (per ggml backend, e.g. the CPU's
    AVX2/FMA/F16C flags), ``default_threads``, ``backends`` (ggml registry names: CPU, RPC, CUDA,
    Metal...), ``cpu_variant`` / ``cpu_module`` (the CPU module ggml picked
    for this machine in a dispatching build, else None), ``build`` (how ggml
    was built: ``backend_dl``, ``backend_dir``, ``bundled_ggml``, ``rpc``,
    ``rpc_protocol``), and ``cpu_features_unused``:
    instruction sets the CPU has that this ggml build does not use, with
    ``advice`` on how to build ggml for this CPU when the list is not empty."""
    info = _core.system_info()
    unused = unused_cpu_features(info["features"].get("CPU", {}))
    info["cpu_features_unused"] = unused
    bundled = bool(info.get("build", {}).get("bundled_ggml"))
    if unused:
        which = (f"the CPU variant ggml loaded ({info.get('cpu_variant')})" if bundled
                 else "the installed ggml (libggml-python)")
        info["advice"] = (
            f"this CPU has {', '.join(unused)}, which {which} was not built for; "
            f"a ggml compiled for this CPU is faster: {native_build_command(bundled)}"
        )
    return info

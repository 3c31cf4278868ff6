"""The ``mimo-ggml`` command line (also ``python -m mimo_ggml``).

Sub-commands: ``info`` (this build and, optionally, a GGUF file), ``convert``
(Hugging Face checkpoints -> GGUF) and ``quantize`` (GGUF -> GGUF). Quiet by
default; ``-v`` shows the native logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import MimoError

CONVERTERS = ("asr", "audio-tokenizer", "mimo2")


def _cmd_info(args) -> int:
    from .system import system_info

    info = system_info()
    if args.model:
        import gguf

        r = gguf.GGUFReader(args.model)
        fields = {}
        for name, field in r.fields.items():
            if name.startswith("GGUF.") or name.startswith("tokenizer.ggml."):
                continue
            value = field.contents()
            fields[name] = value
        types: dict[str, int] = {}
        for t in r.tensors:
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        info["model"] = {"path": str(args.model), "metadata": fields, "tensors": len(r.tensors), "tensor_types": types}
    print(json.dumps(info, indent=2, ensure_ascii=False, default=str))
    return 0


def _cmd_convert(args) -> int:
    out = Path(args.output)
    if args.kind == "asr":
        from .convert.asr import convert_asr

        convert_asr(args.source, out, dtype=args.dtype, fuse_qkv=not args.no_fuse_qkv, include_tts=not args.no_tts)
    elif args.kind == "audio-tokenizer":
        from .convert.audio_tokenizer import convert_audio_tokenizer

        convert_audio_tokenizer(args.source, out, dtype=args.dtype)
    else:
        from .convert.mimo2 import convert_mimo2

        convert_mimo2(args.source, out)
    print(out)
    return 0


def _cmd_quantize(args) -> int:
    from .convert.quantize import quantize_gguf

    quantize_gguf(args.input, args.output, args.type)
    print(args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mimo-ggml", description="Run Xiaomi MiMo models on ggml.")
    p.add_argument("-v", "--verbose", action="store_true", help="show native (ggml) logs")
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="show this build's ggml, devices and CPU features (and a GGUF's metadata)")
    info.add_argument("model", nargs="?", help="a GGUF file to describe")
    info.set_defaults(func=_cmd_info)

    conv = sub.add_parser("convert", help="convert a Hugging Face checkpoint folder to GGUF")
    conv.add_argument("kind", choices=CONVERTERS, help="which model the folder holds")
    conv.add_argument("source", help="checkpoint folder (config.json + *.safetensors)")
    conv.add_argument("output", help="GGUF file to write")
    conv.add_argument("--dtype", choices=("f16", "f32"), default="f16", help="type of matrices (default f16)")
    conv.add_argument("--no-fuse-qkv", action="store_true", help="asr: write separate q/k/v instead of attn.qkv")
    conv.add_argument("--no-tts", action="store_true", help="asr: leave out the TTS-only modules")
    conv.set_defaults(func=_cmd_convert)

    q = sub.add_parser("quantize", help="quantize a GGUF's matrices with ggml (norms, biases, codebooks kept)")
    q.add_argument("input")
    q.add_argument("output")
    q.add_argument("type", help="q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K or q6_K")
    q.set_defaults(func=_cmd_quantize)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except (MimoError, FileNotFoundError, ValueError) as exc:
        print(f"mimo-ggml: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mimo-ggml: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``mapscribe export-onnx``: make a model file ready to caption without torch."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, CommandError


def add_runtime_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export-onnx", help="add ONNX graphs to a model file, to caption without torch",
        description="Export the captioner of MODEL as ONNX graphs (the encoder, the decoder's "
                    "start and one decoder step) and write them into the model file, so that "
                    "`mapscribe caption` and `predict` can run it with ONNX Runtime "
                    "(--runtime onnx, or where torch is not installed). The graphs share the "
                    "file's weights (a few hundred kB are added) and are checked against torch "
                    "before they are written. Needs torch and the 'onnx' package.")
    export.add_argument("model", metavar="MODEL", help="a MapScribe model file (.mscap)")
    export.add_argument("--out", metavar="COPY",
                        help="write a copy of MODEL with the graphs instead of changing MODEL")
    export.add_argument("--overwrite", action="store_true", help="replace an existing COPY")
    export.set_defaults(handler=_export_onnx)


def _export_onnx(args: argparse.Namespace) -> int:
    if not Path(args.model).is_file():
        raise CommandError(f"no such model file: {args.model}")
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise CommandError(f"{args.out} exists: add --overwrite to replace it, or choose "
                           "another --out")
    from ..runtime.export import export_onnx

    result = export_onnx(args.model, args.out)
    sizes = ", ".join(f"{name.replace('_', ' ')} {size / 1024:.0f} kB"
                      for name, size in result.graph_bytes.items())
    batch = ("any batch" if result.encoder_batch is None
             else f"batches of {result.encoder_batch} (padded)")
    print(f"ONNX graphs written into {result.path}: {sizes}; the encoder takes {batch}.")
    print(f"{result.shared_weights} weights are read from the model's own tensors "
          f"({result.embedded_bytes / 1024:.0f} kB of constants inside the graphs); largest "
          f"difference to torch {max(result.max_difference.values()):.1e} (relative), "
          f"in {result.seconds:.0f} s.")
    print(f"Caption without torch: mapscribe caption RASTER --model {result.path} "
          "--runtime onnx --out grid.gpkg")
    return EXIT_OK

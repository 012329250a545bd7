"""`mapscribe caption` and `mapscribe export`: the command-line front doors of captioning.

``caption`` turns its arguments into :class:`~.captioning.CaptionRasterParams`, runs
:func:`~.captioning.caption_raster` with a progress bar, and prints a summary. Ctrl-C stops
after the batch in hand (everything captioned so far stays in the file) and says how to resume;
a second Ctrl-C stops at once. ``export`` writes GeoJSON, CSV or the HTML report.

Nothing heavy is imported until a command runs, so ``mapscribe --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

SHOWN_EXAMPLES = 5


def add_caption_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``caption`` and ``export`` on the ``mapscribe`` parser."""
    caption = commands.add_parser(
        "caption", help="caption a raster tile by tile into a GeoPackage grid",
        description="Cover RASTER (or an area of it) with tiles, caption every tile with the "
                    "model M, and write one polygon per tile with its caption to a GeoPackage "
                    "layer. Each batch is committed as it is done: Ctrl-C (or a crash) keeps "
                    "what is finished, and --resume finishes the rest.")
    caption.add_argument("raster", metavar="RASTER", help="a raster GDAL reads (GeoTIFF, ...)")
    caption.add_argument("--model", required=True, metavar="M",
                         help="a MapScribe model file (.mscap)")
    area = caption.add_mutually_exclusive_group()
    area.add_argument("--bbox", nargs=4, type=float, metavar=("MINX", "MINY", "MAXX", "MAXY"),
                      help="caption only this box (in --bbox-crs; x before y, longitude "
                           "before latitude)")
    area.add_argument("--polygons", metavar="FILE",
                      help="caption only the tiles that meet the polygons of this vector file")
    caption.add_argument("--bbox-crs", metavar="CRS",
                         help="CRS of --bbox, e.g. EPSG:4326 (default: the raster's CRS)")
    caption.add_argument("--polygons-layer", metavar="NAME",
                         help="layer of --polygons to use (default: its first layer)")
    caption.add_argument("--tile-size", type=float, metavar="N",
                         help="tile size (default: the model's input size × the ground "
                              "resolution it was trained at)")
    caption.add_argument("--tile-size-unit", choices=("map", "pixels"), default="map",
                         help="unit of --tile-size: the raster's map units (default) or pixels")
    caption.add_argument("--overlap", type=float, default=0.0, metavar="N",
                         help="overlap between neighbouring tiles (default 0)")
    caption.add_argument("--overlap-unit", choices=("percent", "pixels"), default="percent",
                         help="unit of --overlap (default percent of the tile)")
    caption.add_argument("--bands", default="1,2,3", metavar="R,G,B",
                         help="raster bands shown to the model as red, green, blue, or one "
                              "band as gray (default 1,2,3)")
    caption.add_argument("--batch-size", type=int, default=8, metavar="N",
                         help="tiles per batch (default 8)")
    caption.add_argument("--beam", type=int, default=3, metavar="K",
                         help="beam size; 1 is greedy and fastest (default 3)")
    caption.add_argument("--max-length", type=int, default=20, metavar="N",
                         help="longest caption in words, <end> included (default 20)")
    caption.add_argument("--device", default="auto",
                         help="auto (default: a GPU when there is one), cpu, cuda, cuda:N, mps")
    caption.add_argument("--nodata-threshold", type=float, default=0.5, metavar="F",
                         help="tiles with more than this share of nodata pixels get no caption "
                              "and status 'nodata' (default 0.5)")
    caption.add_argument("--out", required=True, metavar="GPKG",
                         help="the GeoPackage to write (e.g. grid.gpkg)")
    caption.add_argument("--layer", default="captions", metavar="NAME",
                         help="layer name in the GeoPackage (default captions)")
    caption.add_argument("--out-crs", metavar="CRS",
                         help="CRS of the layer, e.g. EPSG:3857 (default: the raster's)")
    existing = caption.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the layer when the output already has it")
    existing.add_argument("--resume", action="store_true",
                          help="caption only the tiles missing from the output's layer")
    caption.set_defaults(handler=_caption)

    export = commands.add_parser(
        "export", help="export a captioned grid to GeoJSON, CSV or an HTML report",
        description="Write the captions of GPKG (made by `mapscribe caption`) as GeoJSON "
                    "(RFC 7946, WGS 84), CSV (caption, tile centre longitude/latitude, WKT) or "
                    "an accessible HTML report. An existing output file is replaced.")
    export.add_argument("gpkg", metavar="GPKG")
    export.add_argument("--format", choices=("geojson", "csv", "html"),
                        help="default: from the --out file's suffix (.geojson, .csv, .html)")
    export.add_argument("--out", required=True, metavar="FILE")
    export.add_argument("--layer", metavar="NAME",
                        help="the captions layer (default: the only one in GPKG)")
    export.set_defaults(handler=_export)


# -- caption ------------------------------------------------------------------------------------
def _caption_params(args: argparse.Namespace):
    from ..geo.areas import BoundingBox, WholeRaster
    from ..geo.raster_info import RasterInfo
    from ..geo.vector import read_polygon_file
    from ..jobs.caption_params import CaptionRasterParams

    if args.bbox_crs and not args.bbox:
        raise _command_error("--bbox-crs needs --bbox MINX MINY MAXX MAXY")
    if args.polygons_layer and not args.polygons:
        raise _command_error("--polygons-layer needs --polygons FILE")
    if args.bbox:
        crs = args.bbox_crs
        if crs is None:
            raster = RasterInfo.from_path(args.raster)
            if raster.crs is None:
                raise _command_error(f"raster {args.raster} has no CRS, so --bbox cannot be "
                                     "placed on it: assign the raster a CRS first.")
            crs = raster.crs_wkt
        area = BoundingBox(*args.bbox, crs=crs)
    elif args.polygons:
        area = read_polygon_file(args.polygons, args.polygons_layer)
    else:
        area = WholeRaster()
    return CaptionRasterParams(
        raster=args.raster, model=args.model, output=args.out, area=area,
        tile_size=args.tile_size, tile_size_unit=args.tile_size_unit, overlap=args.overlap,
        overlap_unit=args.overlap_unit, bands=args.bands, batch_size=args.batch_size,
        beam_size=args.beam, max_length=args.max_length, device=args.device, layer=args.layer,
        output_crs=args.out_crs, overwrite=args.overwrite, resume=args.resume,
        max_invalid_fraction=args.nodata_threshold)


def _command_error(message: str) -> Exception:
    from .common import CommandError

    return CommandError(message)


def _caption(args: argparse.Namespace) -> int:
    from ..jobs.caption import CAPTION_RASTER_ERRORS, caption_raster
    from .common import EXIT_INTERRUPTED, EXIT_OK, StopOnCtrlC, TerminalProgressBar

    try:
        params = _caption_params(args)
        with StopOnCtrlC("mapscribe caption") as stop:
            try:
                result = caption_raster(params, TerminalProgressBar(sys.stderr), stop)
            except KeyboardInterrupt:
                sys.stderr.write(f"mapscribe caption: the tiles finished so far are in "
                                 f"{args.out}; to finish, run the same command with "
                                 "--resume.\n")
                raise
    except CAPTION_RASTER_ERRORS as error:
        raise _command_error(str(error)) from None
    for line in summary_lines(result):
        print(line)
    if result.stopped == "cancelled":
        sys.stderr.write(f"mapscribe caption: stopped; {result.remaining} of "
                         f"{result.tiles_total} tiles are still to caption. To finish, run the "
                         "same command with --resume (instead of --overwrite).\n")
        return EXIT_INTERRUPTED
    return EXIT_OK


def summary_lines(result) -> List[str]:
    """The final summary of a captioning run, for people (its notes were logged as warnings
    already)."""
    done = result.captioned + result.nodata
    lines = [f"{'Stopped' if result.stopped == 'cancelled' else 'Done'}: "
             f"{result.captioned} tiles captioned"
             + (f" ({result.unfinished} cut short at the maximum length)"
                if result.unfinished else "")
             + f", {result.nodata} nodata"
             + (f", {result.skipped_existing} already in the file" if result.skipped_existing
                else "")
             + f" — {done} tiles in {_duration(result.seconds)}"
             + (f" (captioning at {result.tiles_per_second:.2f} tiles/s)" if done else "")
             + (f" on {result.device}" if result.device else "")]
    lines.append(f"Grid: {result.grid_rows} rows × {result.grid_cols} columns, "
                 f"{result.tiles_total} tiles of {result.tile_size_pixels[0]}×"
                 f"{result.tile_size_pixels[1]} px ({result.tile_size_map[0]:.6g} × "
                 f"{result.tile_size_map[1]:.6g} map units); layer CRS {result.crs}")
    lines.append(f"Written to {result.output} (layer '{result.layer}')")
    if result.examples:
        lines.append("A few captions:")
        for example in result.examples[:SHOWN_EXAMPLES]:
            lines.append(f"  row {example.row}, col {example.col}: {example.caption}")
    if result.stopped == "completed":
        lines.append(f"Next: mapscribe export {result.output} --format html --out "
                     f"{Path(result.output).with_suffix('.html')}")
    return lines


def _duration(seconds: float) -> str:
    from ..progress import format_duration

    return f"{seconds:.1f} s" if seconds < 60 else format_duration(seconds)


# -- export -------------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    from ..output.exports import ExportError, export_captions, format_from_suffix
    from .common import EXIT_OK

    fmt = args.format or format_from_suffix(args.out)
    if fmt is None:
        raise _command_error(f"cannot tell the format from {args.out!r}: give --format "
                             "geojson, csv or html (or an --out ending in .geojson, .csv or "
                             ".html).")
    try:
        result = export_captions(args.gpkg, fmt, args.out, layer=args.layer)
    except ExportError as error:
        raise _command_error(str(error)) from None
    print(f"Wrote {result.tiles} tiles as {fmt.upper() if fmt != 'geojson' else 'GeoJSON'} to "
          f"{Path(result.path).resolve()}")
    return EXIT_OK

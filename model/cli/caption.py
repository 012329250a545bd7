"""`mapscribe caption` and `mapscribe export`: the command-line front doors of captioning.

``caption`` turns its arguments into :class:`~..jobs.caption_params.CaptionRasterParams`, runs
:func:`~..jobs.caption.caption_raster` with a progress bar, and prints a summary. Ctrl-C stops
after the batch in hand (everything captioned so far stays in the file) and says how to resume;
a second Ctrl-C stops at once. A finished run is then described (the overview printed, the
regions layer written: :mod:`.describe`) unless ``--no-describe``. ``export`` writes GeoJSON,
CSV or the HTML report.

Nothing here imports torch: the job does when it runs, so ``mapscribe --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

from .. import (
    CANCELLED,
    COMPLETED,
    EXPORT_FORMATS,
    AreaOfInterest,
    BoundingBox,
    CaptionRasterParams,
    CaptionRasterResult,
    MapScribeError,
    WholeRaster,
    caption_raster,
    describe_captions,
    export_captions,
    format_duration,
    format_from_suffix,
    read_polygon_file,
)
from ..geo.raster_info import RasterInfo
from ..geo.tiling import OVERLAP_UNITS, TILE_SIZE_UNITS
from ..jobs.distributed import is_quiet_rank
from ..runtime.base import RUNTIMES
from .common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CommandError,
    StopOnCtrlC,
    TerminalProgressBar,
    default,
)
from .describe import description_lines, print_notes
from .quiet_rank import run_quietly
from .source_args import add_source_arguments, bbox_crs_default, image_source, network_params

SHOWN_EXAMPLES = 5


def add_caption_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``caption`` and ``export`` on the ``mapscribe`` parser."""
    caption = commands.add_parser(
        "caption", help="caption a raster tile by tile into a GeoPackage grid",
        description="Cover RASTER (or an area of it) with tiles, caption every tile with the "
                    "model M, and write one polygon per tile with its caption to a GeoPackage "
                    "layer. Each batch is committed as it is done: Ctrl-C (or a crash) keeps "
                    "what is finished, and --resume finishes the rest.")
    add_source_arguments(caption)
    caption.add_argument("--model", required=True, metavar="M",
                         help="a MapScribe model file (.mscap)")
    area = caption.add_mutually_exclusive_group()
    area.add_argument("--bbox", nargs=4, type=float, metavar=("MINX", "MINY", "MAXX", "MAXY"),
                      help="caption only this box (in --bbox-crs; x before y, longitude "
                           "before latitude)")
    area.add_argument("--polygons", metavar="FILE",
                      help="caption only the tiles that meet the polygons of this vector file")
    caption.add_argument("--bbox-crs", metavar="CRS",  # XYZ: EPSG:3857; WMS/WMTS: required
                         help="CRS of --bbox, e.g. EPSG:4326 (default: the raster's CRS)")
    caption.add_argument("--polygons-layer", metavar="NAME",
                         help="layer of --polygons to use (default: its first layer)")
    caption.add_argument("--tile-size", type=float, metavar="N",
                         help="tile size (default: the model's input size × the ground "
                              "resolution it was trained at)")
    caption.add_argument("--tile-size-unit", choices=TILE_SIZE_UNITS,
                         default=default(CaptionRasterParams, "tile_size_unit"),
                         help="unit of --tile-size: the raster's map units (default) or pixels")
    caption.add_argument("--overlap", type=float, metavar="N",
                         default=default(CaptionRasterParams, "overlap"),
                         help="overlap between neighbouring tiles (default %(default)s)")
    caption.add_argument("--overlap-unit", choices=OVERLAP_UNITS,
                         default=default(CaptionRasterParams, "overlap_unit"),
                         help="unit of --overlap (default percent of the tile)")
    caption.add_argument("--levels", metavar="N|auto",
                         default=str(default(CaptionRasterParams, "levels")),
                         help="caption pyramid: besides the detail tiles, coarser levels whose "
                              "tiles each cover 2 × 2 of the level below, up to one tile for "
                              "the whole area; auto (default) stops where the model would see "
                              "the ground more than 8× coarser than it was trained at; 1: the "
                              "detail tiles alone")
    caption.add_argument("--bands", metavar="R,G,B",
                         default=",".join(map(str, default(CaptionRasterParams, "bands").bands)),
                         help="raster bands shown to the model as red, green, blue, or one "
                              "band as gray (default %(default)s)")
    caption.add_argument("--batch-size", type=int, metavar="N",
                         default=default(CaptionRasterParams, "batch_size"),
                         help="tiles per batch (default %(default)s)")
    caption.add_argument("--beam", type=int, metavar="K",
                         default=default(CaptionRasterParams, "beam_size"),
                         help="beam size; 1 is greedy and fastest (default %(default)s)")
    caption.add_argument("--max-length", type=int, metavar="N",
                         default=default(CaptionRasterParams, "max_length"),
                         help="longest caption in words, <end> included (default %(default)s)")
    caption.add_argument("--device", default=default(CaptionRasterParams, "device"),
                         help="auto (default: a GPU when there is one), cpu, cuda, cuda:N, mps")
    caption.add_argument("--runtime", choices=RUNTIMES,
                         default=default(CaptionRasterParams, "runtime"),
                         help="torch, or onnx (ONNX Runtime with the model file's graphs, see "
                              "export-onnx); auto (default): torch when it is installed")
    caption.add_argument("--nodata-threshold", type=float, metavar="F",
                         default=default(CaptionRasterParams, "max_invalid_fraction"),
                         help="tiles with more than this share of nodata pixels get no caption "
                              "and status 'nodata' (default %(default)s)")
    caption.add_argument("--out", required=True, metavar="GPKG",
                         help="the GeoPackage to write (e.g. grid.gpkg)")
    caption.add_argument("--layer", default=default(CaptionRasterParams, "layer"), metavar="NAME",
                         help="layer name in the GeoPackage (default %(default)s)")
    caption.add_argument("--out-crs", metavar="CRS",
                         help="CRS of the layer, e.g. EPSG:3857 (default: the raster's)")
    existing = caption.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace the layer when the output already has it")
    existing.add_argument("--resume", action="store_true",
                          help="caption only the tiles missing from the output's layer")
    caption.add_argument("--no-describe", action="store_true",
                         help="do not describe the grid at the end of the run (by default: "
                              "the overview is printed and the regions layer written, as "
                              "`mapscribe describe` does)")
    caption.add_argument("--distributed", action="store_true",
                         help="run as one of the processes that torchrun starts (also "
                              "automatic when torchrun starts more than one): each captions "
                              "its share of the tiles into a part file beside --out, and the "
                              "first merges them at the end")
    caption.set_defaults(handler=_caption)

    export = commands.add_parser(
        "export", help="export a captioned grid to GeoJSON, CSV or an HTML report",
        description="Write the captions of GPKG (made by `mapscribe caption`) as GeoJSON "
                    "(RFC 7946, WGS 84), CSV (caption, tile centre longitude/latitude, WKT) or "
                    "an accessible HTML report. An existing output file is replaced only when "
                    "it is an earlier export of the same kind, or with --overwrite.")
    export.add_argument("gpkg", metavar="GPKG")
    export.add_argument("--format", choices=EXPORT_FORMATS,
                        help="default: from the --out file's suffix (.geojson, .csv, .html)")
    export.add_argument("--out", required=True, metavar="FILE")
    export.add_argument("--layer", metavar="NAME",
                        help="the captions layer (default: the only one in GPKG)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace FILE even when it is not an earlier export of this kind")
    export.set_defaults(handler=_export)


# -- caption ------------------------------------------------------------------------------------
def _caption_params(args: argparse.Namespace) -> CaptionRasterParams:
    if args.bbox_crs and not args.bbox:
        raise CommandError("--bbox-crs needs --bbox MINX MINY MAXX MAXY")
    if args.polygons_layer and not args.polygons:
        raise CommandError("--polygons-layer needs --polygons FILE")
    source = image_source(args)
    area: AreaOfInterest
    if args.bbox:
        crs = args.bbox_crs or bbox_crs_default(source)
        if crs is None and source.is_web:
            raise CommandError(f"give --bbox-crs with --bbox for {source.describe()} (e.g. "
                               "--bbox-crs EPSG:4326 for longitudes and latitudes)")
        if crs is None:
            raster = RasterInfo.from_path(source.location, dict(source.open_options))
            if raster.crs_wkt is None:
                raise CommandError(f"raster {args.raster} has no CRS, so --bbox cannot be "
                                   "placed on it: assign the raster a CRS first.")
            crs = raster.crs_wkt
        minx, miny, maxx, maxy = args.bbox
        area = BoundingBox(minx, miny, maxx, maxy, crs=crs)
    elif args.polygons:
        area = read_polygon_file(args.polygons, args.polygons_layer)
    else:
        area = WholeRaster()
    return CaptionRasterParams(
        raster=source, model=args.model, output=args.out, area=area, zoom=args.zoom,
        network=network_params(args),
        tile_size=args.tile_size, tile_size_unit=args.tile_size_unit, overlap=args.overlap,
        overlap_unit=args.overlap_unit, bands=args.bands, batch_size=args.batch_size,
        beam_size=args.beam, max_length=args.max_length, device=args.device,
        runtime=args.runtime, layer=args.layer,
        output_crs=args.out_crs, overwrite=args.overwrite, resume=args.resume,
        max_invalid_fraction=args.nodata_threshold, distributed=args.distributed,
        levels=args.levels)


def _caption(args: argparse.Namespace) -> int:
    if is_quiet_rank():
        return run_quietly("mapscribe caption",
                           lambda stop: caption_raster(_caption_params(args), None, stop))
    params = _caption_params(args)
    with StopOnCtrlC("mapscribe caption") as stop:
        try:
            result = caption_raster(params, TerminalProgressBar(sys.stderr), stop)
        except KeyboardInterrupt:
            sys.stderr.write(f"mapscribe caption: the tiles finished so far are in "
                             f"{args.out}; to finish, run the same command with "
                             "--resume.\n")
            raise
    for line in summary_lines(result):
        print(line)
    if result.stopped == COMPLETED and not args.no_describe:
        _describe_run(result)
    if result.stopped == CANCELLED:
        sys.stderr.write(f"mapscribe caption: stopped; {result.remaining} of "
                         f"{result.tiles_total} tiles are still to caption. To finish, run the "
                         "same command with --resume (instead of --overwrite).\n")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _describe_run(result: CaptionRasterResult) -> None:
    """Describe the grid just captioned; a failure here leaves the captions as they are and is
    said, not raised (the run itself succeeded)."""
    try:
        description = describe_captions(result.output, layer=result.layer)
    except MapScribeError as error:
        sys.stderr.write(f"mapscribe caption: the captions are written, but describing them "
                         f"failed: {error}\n")
        return
    for line in description_lines(description):
        print(line)
    print_notes(description, "mapscribe caption", sys.stderr)


def summary_lines(result: CaptionRasterResult) -> List[str]:
    """The final summary of a captioning run, for people, its notes (e.g. imagery far coarser
    than the model's training images) included."""
    done = result.processed
    lines = [f"{'Stopped' if result.stopped == CANCELLED else 'Done'}: "
             f"{result.captioned} tiles captioned"
             + (f" ({result.unfinished} cut short at the maximum length)"
                if result.unfinished else "")
             + (f", {result.uncertain} of them uncertain (low confidence)"
                if result.uncertain else "")
             + f", {result.nodata} nodata"
             + (f", {result.failed} failed (imagery not delivered: --resume tries them again)"
                if result.failed else "")
             + (f", {result.skipped_existing} already in the file" if result.skipped_existing
                else "")
             + f" — {done} tiles in {_duration(result.seconds)}"
             + (f" (captioning at {result.tiles_per_second:.2f} tiles/s)" if done else "")
             + (f" on {result.device}" if result.device else "")]
    levels = result.level_tiles if len(result.level_tiles) > 1 else []
    lines.append(f"Grid: {result.grid_rows} rows × {result.grid_cols} columns, "
                 f"{levels[-1] if levels else result.tiles_total} tiles of "
                 f"{result.tile_size_pixels[0]}×{result.tile_size_pixels[1]} px "
                 f"({result.tile_size_map[0]:.6g} × {result.tile_size_map[1]:.6g} map units); "
                 f"layer CRS {result.crs}")
    if levels:
        lines.append(f"Caption pyramid: {len(levels)} levels of "
                     f"{', '.join(f'{count:,}' for count in levels)} tiles (level 0, the "
                     f"coarsest, first); {result.tiles_total:,} tiles in all"
                     + (f"; {result.levels_reason}" if result.levels_reason else ""))
    lines.append(f"Written to {result.output} (layer '{result.layer}')"
                 + (f", merged from the part files of {result.world_size} torchrun ranks"
                    if result.world_size > 1 else ""))
    if result.network:
        stats = result.network
        lines.append(f"Imagery from {result.source}: {stats['requests']:.0f} requests "
                     f"({stats['requests_per_second']:.1f}/s), {stats['cache_hits']:.0f} from "
                     f"the cache, {stats['retries']:.0f} retried, {stats['throttled']:.0f} "
                     "throttled by the server")
    if result.attribution:
        lines.append(f"Imagery credit: {result.attribution}")
    lines += [f"Note: {note}" for note in result.notes]
    if result.examples:
        lines.append("A few captions:")
        for example in result.examples[:SHOWN_EXAMPLES]:
            lines.append(f"  row {example.row}, col {example.col}: {example.caption}")
    if result.stopped == COMPLETED:
        lines.append(f"Next: mapscribe export {result.output} --format html --out "
                     f"{Path(result.output).with_suffix('.html')}")
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else format_duration(seconds)


# -- export -------------------------------------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    fmt = args.format or format_from_suffix(args.out)
    if fmt is None:
        raise CommandError(f"cannot tell the format from {args.out!r}: give --format "
                           "geojson, csv or html (or an --out ending in .geojson, .csv or "
                           ".html).")
    result = export_captions(args.gpkg, fmt, args.out, layer=args.layer,
                             overwrite=args.overwrite)
    print(f"Wrote {result.tiles} tiles as {fmt.upper() if fmt != 'geojson' else 'GeoJSON'} to "
          f"{Path(result.path).resolve()}")
    return EXIT_OK

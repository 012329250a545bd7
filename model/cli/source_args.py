"""The image-source options of ``mapscribe caption``: a file or GDAL string, ``xyz:TEMPLATE``,
``--wms URL --layers L``, ``--wmts URL --layers L``, and how web services are fetched (zoom,
cache, rate cap). Every default comes from the engine's dataclasses.
"""

from __future__ import annotations

import argparse
from typing import Dict, Optional

from ..geo.http_fetch import NetworkParams
from ..geo.sources import DEFAULT_XYZ_ZMAX, ImageSource
from .common import CommandError, default


def add_source_arguments(caption: argparse.ArgumentParser) -> None:
    """The positional RASTER (optional with --wms/--wmts) and the source options."""
    caption.add_argument(
        "raster", metavar="RASTER", nargs="?",
        help="a raster GDAL reads: a file (GeoTIFF, VRT, …), a GDAL string (GPKG:file.gpkg:table, "
             "/vsizip/archive.zip/scene.tif, /vsicurl/https://host/cog.tif, WMS:…), or "
             "xyz:https://host/{z}/{x}/{y}.png for an XYZ tile service")
    web = caption.add_argument_group(
        "web map services", "Respect the imagery provider's terms of use and rate limits.")
    web.add_argument("--wms", metavar="URL", help="caption a WMS layer (with --layers)")
    web.add_argument("--wmts", metavar="URL",
                     help="caption a WMTS layer: its capabilities URL (with --layers)")
    # --layer names the output's layer (since the first release): the service's are --layers.
    web.add_argument("--layers", metavar="L",
                     help="the WMS layers (comma-separated), or the WMTS layer")
    web.add_argument("--wmts-layer", dest="wmts_layer", metavar="L",
                     help="the WMTS layer (the same as --layers L)")
    web.add_argument("--crs", metavar="CRS", help="WMS: the CRS to request (default: EPSG:3857 "
                     "when the layer offers it)")
    web.add_argument("--style", metavar="S", default="", help="WMS styles or the WMTS style")
    web.add_argument("--format", dest="image_format", metavar="MIME", default="",
                     help="image format, e.g. image/png or image/jpeg (default: PNG if offered)")
    web.add_argument("--tile-matrix-set", metavar="ID", default="",
                     help="WMTS tile matrix set (default: one in EPSG:3857 if offered)")
    web.add_argument("--zmin", type=int, default=default(ImageSource, "zmin"),
                     help="XYZ: the coarsest zoom level the service has (default %(default)s)")
    web.add_argument("--zmax", type=int, default=DEFAULT_XYZ_ZMAX,
                     help="XYZ: the finest zoom level the service has (default %(default)s)")
    web.add_argument("--zoom", type=int, metavar="Z",
                     help="the zoom level to read (default: the one closest to the model's "
                          "ground resolution, never past --zmax)")
    web.add_argument("--attribution", default="", metavar="TEXT",
                     help="the imagery's credit line, recorded in the output and the report")
    web.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                     help="an HTTP header for every request (an API key); never recorded")
    web.add_argument("--referer", default="", metavar="URL", help="the Referer to send")
    web.add_argument("--open-option", "--oo", action="append", default=[], metavar="NAME=VALUE",
                     help="a GDAL open option of RASTER (repeatable)")
    web.add_argument("--no-cache", action="store_true",
                     help="do not keep fetched tiles in MapScribe's cache folder")
    web.add_argument("--max-requests-per-second", type=float, metavar="N",
                     default=default(NetworkParams, "max_requests_per_second"),
                     help="at most N requests a second to a web service; 0: no cap, only for "
                          "servers you run (default %(default)s)")
    web.add_argument("--connections", type=int, metavar="N",
                     default=default(NetworkParams, "connections"),
                     help="tiles fetched at once from a web service (default %(default)s)")


def _pairs(values, separator: str, what: str) -> Dict[str, str]:
    pairs = {}
    for value in values:
        name, found, text = value.partition(separator)
        if not found or not name.strip():
            raise CommandError(f"{what} {value!r} is not NAME{separator}VALUE")
        pairs[name.strip()] = text.strip()
    return pairs


def image_source(args: argparse.Namespace) -> ImageSource:
    """The source the arguments name (exactly one of RASTER, --wms, --wmts)."""
    given = [name for name, value in (("RASTER", args.raster), ("--wms", args.wms),
                                      ("--wmts", args.wmts)) if value]
    if len(given) != 1:
        raise CommandError("give one image source: a RASTER, or --wms URL --layers L, or "
                           "--wmts URL --layers L" + (f" (not {' and '.join(given)})"
                                                     if given else ""))
    headers = _pairs(args.header, ":", "--header")
    web = dict(attribution=args.attribution, headers=headers, referer=args.referer)
    if args.wms:
        if not args.layers:
            raise CommandError("--wms needs --layers L (the layer names its capabilities "
                               "list)")
        return ImageSource.wms(args.wms, args.layers, styles=args.style, crs=args.crs or "",
                               image_format=args.image_format, **web)
    if args.wmts:
        layer = args.wmts_layer or args.layers
        if not layer:
            raise CommandError("--wmts needs --layers L (the layer its capabilities list)")
        return ImageSource.wmts(args.wmts, layer, tile_matrix_set=args.tile_matrix_set,
                                style=args.style, image_format=args.image_format, **web)
    source = ImageSource.parse(args.raster)
    if source.kind == "xyz":
        return ImageSource.xyz(source.location, zmin=args.zmin, zmax=args.zmax, **web)
    options = _pairs(args.open_option, "=", "--open-option")
    return ImageSource.file(source.location, open_options=options or None)


def network_params(args: argparse.Namespace) -> NetworkParams:
    return NetworkParams(cache=not args.no_cache,
                         max_requests_per_second=args.max_requests_per_second,
                         connections=args.connections)


def bbox_crs_default(source: ImageSource) -> Optional[str]:
    """The CRS of --bbox when --bbox-crs is not given: a web service's only for XYZ."""
    return "EPSG:3857" if source.kind == "xyz" else None

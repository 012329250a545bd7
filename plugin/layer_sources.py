"""The image source behind a QGIS raster layer, taken whole: what the engine reads for it.

* ``gdal`` layers: the GDAL string QGIS opens (``GPKG:file.gpkg:table``,
  ``/vsizip/archive.zip/scene.tif``, ``/vsicurl/https://…``, …) with its open options;
* ``wms`` layers: XYZ, WMS and WMTS, decoded from the layer's URI; credentials QGIS keeps for it
  (an ``authcfg`` of its authentication database, a user name and password, HTTP headers) become
  HTTP headers held in memory by the engine's source, never written anywhere;
* anything else (a WCS, an ArcGIS MapServer, a virtual raster, …) cannot be read: the layer
  stays listed, and :func:`layer_problem` says why, before Run.

Holds no QGIS object in what it returns; call it in the main thread (the authentication manager
and the layer live there).
"""

from __future__ import annotations

import base64
import math
from typing import Dict, Optional, Tuple

from qgis.core import (
    QgsApplication,
    QgsDataSourceUri,
    QgsDistanceArea,
    QgsPointXY,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
)

from ..model import ImageSource, MapScribeError
from .ui import ParameterError, tr

READABLE_PROVIDERS = ("gdal", "wms")


def layer_image_source(layer: Optional[QgsRasterLayer]) -> ImageSource:
    """The engine's source for ``layer``; ParameterError (field "raster") saying why when
    MapScribe cannot read it."""
    if layer is None:
        raise ParameterError("raster", tr("choose a raster layer to caption (add one to the "
                                          "project first: Layer > Add Layer > Add Raster "
                                          "Layer)."))
    provider = layer.providerType()
    try:
        if provider == "gdal":
            return _gdal_source(layer)
        if provider == "wms":
            return _web_source(layer)
    except ParameterError:
        raise
    except MapScribeError as error:  # the engine's checks of the source (a bad template …)
        raise ParameterError("raster", tr("layer {name!r}: {error}").format(
            name=layer.name(), error=error)) from None
    raise ParameterError("raster", _unreadable(layer))


def run_source(layer: Optional[QgsRasterLayer]) -> Tuple[str, Optional[ImageSource]]:
    """(what to call the raster, the source when a path says too little) for a run's request:
    a plain file is its path alone; ParameterError when MapScribe cannot read the layer."""
    source = layer_image_source(layer)
    name = source.location if source.kind == "file" else source.describe()
    plain = not (source.is_web or source.open_options or source.headers or source.attribution)
    return name, None if plain else source


def layer_problem(layer: Optional[QgsRasterLayer]) -> Optional[str]:
    """Why MapScribe cannot read ``layer`` (None: it can)."""
    if layer is None:
        return None
    try:
        layer_image_source(layer)
    except ParameterError as error:
        return str(error)
    return None


def _unreadable(layer: QgsRasterLayer) -> str:
    provider = layer.providerType()
    reasons = {
        "wcs": tr("it is a WCS layer; MapScribe reads files GDAL opens, XYZ, WMS and WMTS "
                  "services. Export it as a GeoTIFF (right-click > Export > Save As…) or add "
                  "the service's WMS."),
        "arcgismapserver": tr("it is an ArcGIS MapServer layer (often behind a token), which "
                              "MapScribe does not read. Use the service's WMTS or WMS if it "
                              "has one, or export the imagery as a GeoTIFF."),
    }
    return tr("layer {name!r} cannot be read by MapScribe: {why}").format(
        name=layer.name(), why=reasons.get(provider, tr(
            "its provider {provider!r} is not one MapScribe reads (files GDAL opens, XYZ, WMS, "
            "WMTS). Save it as a GeoTIFF first (right-click > Export > Save As…).").format(
                provider=provider)))


# --------------------------------------------------------------------------------------------
# gdal layers
# --------------------------------------------------------------------------------------------
def _gdal_source(layer: QgsRasterLayer) -> ImageSource:
    source = layer.source()
    base, _, _ = source.partition("|")
    parts = QgsProviderRegistry.instance().decodeUri("gdal", source)
    location = base
    table = parts.get("layerName")
    if table and not base.upper().startswith("GPKG:") and base.lower().endswith(".gpkg"):
        location = f"GPKG:{base}:{table}"  # a raster table named QGIS's way
    options = {}
    for option in parts.get("openOptions") or []:
        name, _, value = str(option).partition("=")
        options[name] = value
    headers = _auth_headers(parts.get("authcfg") or "", location, layer)
    return ImageSource(kind="file", location=location, open_options=tuple(options.items()),
                       headers=tuple(headers.items()),
                       attribution=layer_attribution(layer))


# --------------------------------------------------------------------------------------------
# wms layers: XYZ, WMS, WMTS
# --------------------------------------------------------------------------------------------
def _web_source(layer: QgsRasterLayer) -> ImageSource:
    uri = QgsDataSourceUri()
    uri.setEncodedUri(layer.source())
    keys = set(QgsProviderRegistry.instance().decodeUri("wms", layer.source()))
    url = uri.param("url")
    headers: Dict[str, str] = {}
    for key in keys:
        if key.lower().startswith("http-header:"):
            headers[key.split(":", 1)[1]] = uri.param(key)
    referer = uri.param("referer") if "referer" in keys else ""
    if uri.username() or uri.password():
        pair = f"{uri.username()}:{uri.password()}".encode("utf-8")
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    headers.update(_auth_headers(uri.authConfigId(), url, layer))
    common = dict(attribution=layer_attribution(layer), headers=headers, referer=referer,
                  name=layer.name())
    kind = uri.param("type") if "type" in keys else ""
    if kind == "xyz":
        if not url.lower().startswith(("http://", "https://")):
            raise ParameterError("raster", tr(
                "layer {name!r} reads its tiles from {url}, not from a web service: MapScribe "
                "reads XYZ tiles over http(s). Export the layer as a GeoTIFF first.").format(
                    name=layer.name(), url=url.split("?")[0]))
        ratio = float(uri.param("tilePixelRatio") or 1) if "tilePixelRatio" in keys else 1.0
        return ImageSource.xyz(url, zmin=_int(uri, keys, "zmin", 0),
                               zmax=_int(uri, keys, "zmax", 19),
                               tile_pixels=512 if ratio >= 2 else 256, **common)
    if kind and kind != "wms":
        raise ParameterError("raster", tr(
            "layer {name!r} is a {kind} tile service, which MapScribe does not read (it reads "
            "XYZ, WMS and WMTS).").format(name=layer.name(), kind=kind))
    layers = ",".join(name for name in uri.params("layers") if name)
    styles = ",".join(uri.params("styles"))
    if "tileMatrixSet" in keys:
        return ImageSource.wmts(url, layers, tile_matrix_set=uri.param("tileMatrixSet"),
                                style=styles, image_format=uri.param("format"), **common)
    return ImageSource.wms(url, layers, styles=styles, crs=uri.param("crs"),
                           image_format=uri.param("format"), **common)


def _int(uri: QgsDataSourceUri, keys, name: str, default: int) -> int:
    try:
        return int(uri.param(name)) if name in keys else default
    except ValueError:
        return default


def _auth_headers(authcfg: str, url: str, layer: QgsRasterLayer) -> Dict[str, str]:
    """The headers QGIS's authentication manager adds for ``authcfg`` (Basic, API header,
    OAuth2 with a token at hand …), read from a request it fills: kept in memory only."""
    if not authcfg:
        return {}
    from qgis.PyQt.QtCore import QUrl
    from qgis.PyQt.QtNetwork import QNetworkRequest

    request = QNetworkRequest(QUrl(url))
    answer = QgsApplication.authManager().updateNetworkRequest(request, authcfg)
    ok, request = answer if isinstance(answer, tuple) else (answer, request)
    if not ok:
        raise ParameterError("raster", tr(
            "layer {name!r} uses the authentication configuration {id}, which QGIS could not "
            "apply (is the master password entered, and the configuration still there? "
            "Settings > Options > Authentication).").format(name=layer.name(), id=authcfg))
    return {bytes(name).decode("latin-1"): bytes(request.rawHeader(name)).decode("latin-1")
            for name in request.rawHeaderList()}


# --------------------------------------------------------------------------------------------
# Describing a layer truthfully
# --------------------------------------------------------------------------------------------
def layer_attribution(layer: QgsRasterLayer) -> str:
    """The imagery's credit line as QGIS knows it: the layer's attribution (Layer Properties >
    Metadata or QGIS Server), else its metadata's rights."""
    text = (layer.attribution() or "").strip()
    if not text:
        rights = [right.strip() for right in layer.metadata().rights() if right.strip()]
        text = "; ".join(rights)
    return text


def view_metres_per_pixel(canvas) -> Optional[float]:
    """Ground metres per screen pixel at the centre of the map canvas (None: no canvas)."""
    if canvas is None:
        return None
    settings = canvas.mapSettings()
    centre = canvas.extent().center()
    step = canvas.mapUnitsPerPixel()
    if not step or not math.isfinite(step):
        return None
    measure = QgsDistanceArea()
    measure.setSourceCrs(settings.destinationCrs(), QgsProject.instance().transformContext())
    measure.setEllipsoid("WGS84")
    try:
        metres = measure.measureLine(QgsPointXY(centre.x(), centre.y()),
                                     QgsPointXY(centre.x() + step, centre.y()))
    except Exception:  # noqa: BLE001 - a CRS QGIS cannot measure in: no figure, not an error
        return None
    return metres if metres > 0 and math.isfinite(metres) else None


def describe_web_source(layer: QgsRasterLayer, source: ImageSource, canvas) -> str:
    """What a web layer is, for the dock's raster line: the service, its zoom range, the ground
    resolution at the current view and the credit the provider asks for."""
    from urllib.parse import urlsplit

    host = urlsplit(source.location).hostname or source.location
    if source.kind == "xyz":
        what = tr("XYZ tiles from {host}, zoom {zmin}–{zmax}, Web Mercator").format(
            host=host, zmin=source.zmin, zmax=source.zmax)
    elif source.kind == "wmts":
        what = tr("WMTS layer {layer} from {host}").format(layer=source.layers, host=host)
    else:
        what = tr("WMS layer(s) {layer} from {host}").format(layer=source.layers, host=host)
    text = f"{layer.name()}: {what}."
    metres = view_metres_per_pixel(canvas)
    if metres is not None:
        text += " " + tr("At the current view the map shows about {m:.2g} m per pixel; "
                         "MapScribe fetches the zoom closest to the model's own "
                         "resolution.").format(m=metres)
    text += " " + (tr("Imagery: {credit}.").format(credit=source.attribution)
                   if source.attribution else
                   tr("The layer names no attribution: check the provider's terms."))
    return text

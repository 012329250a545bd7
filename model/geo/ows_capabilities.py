"""Reading the capabilities documents of a WMS (1.1.1, 1.3.0) and a WMTS (1.0.0): only what
captioning needs, as plain data. Nothing here fetches anything (:mod:`.web_service` does).

The XML comes from a server: it is parsed with the standard library's expat parser, which
refuses external entities and limits entity expansion, and every value is read as text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .sources import SourceError, redact_url

Bounds = Tuple[float, float, float, float]


@dataclass
class WmsLayer:
    name: str
    title: str
    crs: List[str]                       # inherited ones included
    bounds: Dict[str, Bounds]            # CRS → (minx, miny, maxx, maxy) in x/y order
    geographic_bounds: Optional[Bounds]  # (west, south, east, north)
    attribution: str = ""
    styles: List[str] = field(default_factory=list)


@dataclass
class WmsCapabilities:
    version: str
    title: str
    get_map_url: str
    formats: List[str]
    layers: Dict[str, WmsLayer]


@dataclass
class TileMatrix:
    identifier: str
    scale_denominator: float
    top_left: Tuple[float, float]  # as written (axis order of the CRS)
    tile_size: Tuple[int, int]     # (width, height)
    matrix_size: Tuple[int, int]   # (cols, rows)


@dataclass
class TileMatrixSet:
    identifier: str
    crs: str
    matrices: List[TileMatrix]


@dataclass
class WmtsLayer:
    identifier: str
    title: str
    formats: List[str]
    styles: List[str]                     # the default one first
    matrix_sets: Dict[str, Dict[str, Tuple[int, int, int, int]]]  # set → matrix → limits
    geographic_bounds: Optional[Bounds]
    resource_templates: Dict[str, str]    # format → ResourceURL template (REST)
    attribution: str = ""


@dataclass
class WmtsCapabilities:
    title: str
    get_tile_url: str   # KVP endpoint, "" when the service offers REST only
    layers: Dict[str, WmtsLayer]
    matrix_sets: Dict[str, TileMatrixSet]


def _parse(text: bytes, url: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(text)
    except ET.ParseError as error:
        start = " ".join(text[:120].decode("utf-8", "replace").split())
        raise SourceError(f"{redact_url(url)} did not answer with {what} capabilities ({error}; "
                          f"it began {start!r}): check the URL.") from None


def _local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> Optional[ET.Element]:
    for child in element:
        if _local(child) == name:
            return child
    return None


def _children(element: ET.Element, name: str) -> List[ET.Element]:
    return [child for child in element if _local(child) == name]


def _text(element: Optional[ET.Element], name: str, default: str = "") -> str:
    found = _child(element, name) if element is not None else None
    return (found.text or "").strip() if found is not None and found.text else default


def _floats(text: str) -> List[float]:
    return [float(value) for value in text.replace(",", " ").split()]


def _href(element: Optional[ET.Element]) -> str:
    if element is None:
        return ""
    for key, value in element.attrib.items():
        if key.endswith("href"):
            return value
    return ""


def _exception_text(root: ET.Element) -> Optional[str]:
    if "Exception" not in _local(root):
        return None
    texts = [" ".join((node.text or "").split()) for node in root.iter()
             if _local(node) in ("ServiceException", "ExceptionText") and node.text]
    return "; ".join(texts) or _local(root)


# --------------------------------------------------------------------------------------------
# WMS
# --------------------------------------------------------------------------------------------
def parse_wms_capabilities(text: bytes, url: str) -> WmsCapabilities:
    root = _parse(text, url, "WMS")
    problem = _exception_text(root)
    if problem:
        raise SourceError(f"the WMS at {redact_url(url)} answered GetCapabilities with an "
                          f"error: {problem}")
    if _local(root) not in ("WMS_Capabilities", "WMT_MS_Capabilities"):
        raise SourceError(f"{redact_url(url)} did not answer with WMS capabilities (its "
                          f"document is {_local(root)!r}): check that it is a WMS URL.")
    version = root.attrib.get("version", "1.3.0")
    service, capability = _child(root, "Service"), _child(root, "Capability")
    if capability is None:
        raise SourceError(f"the WMS capabilities of {redact_url(url)} have no Capability "
                          "section.")
    request = _child(capability, "Request")
    get_map = _child(request, "GetMap") if request is not None else None
    formats = [(f.text or "").strip() for f in _children(get_map, "Format")] if get_map \
        is not None else []
    online = None
    if get_map is not None:
        for node in get_map.iter():
            if _local(node) == "Get":
                online = _child(node, "OnlineResource")
                break
    layers: Dict[str, WmsLayer] = {}
    top = _child(capability, "Layer")
    if top is not None:
        _wms_layers(top, [], "", layers, version)
    return WmsCapabilities(version=version, title=_text(service, "Title"),
                           get_map_url=_href(online), formats=formats, layers=layers)


def _wms_layers(element: ET.Element, inherited_crs: List[str], inherited_attribution: str,
                found: Dict[str, WmsLayer], version: str) -> None:
    crs = inherited_crs + [(node.text or "").strip() for node in element
                           if _local(node) in ("CRS", "SRS") and node.text]
    attribution_node = _child(element, "Attribution")
    attribution = _text(attribution_node, "Title") or inherited_attribution
    name = _text(element, "Name")
    if name:
        bounds: Dict[str, Bounds] = {}
        for node in _children(element, "BoundingBox"):
            code = node.attrib.get("CRS") or node.attrib.get("SRS") or ""
            try:
                box = tuple(float(node.attrib[key]) for key in ("minx", "miny", "maxx", "maxy"))
            except (KeyError, ValueError):
                continue
            bounds[code.upper()] = box  # type: ignore[assignment]  # four floats
        geographic = None
        ex = _child(element, "EX_GeographicBoundingBox")
        if ex is not None:
            try:
                geographic = tuple(float(_text(ex, key)) for key in (
                    "westBoundLongitude", "southBoundLatitude", "eastBoundLongitude",
                    "northBoundLatitude"))
            except ValueError:
                geographic = None
        old = _child(element, "LatLonBoundingBox")
        if geographic is None and old is not None:
            try:
                geographic = tuple(float(old.attrib[key]) for key in ("minx", "miny", "maxx",
                                                                        "maxy"))
            except (KeyError, ValueError):
                geographic = None
        styles = [_text(style, "Name") for style in _children(element, "Style")]
        found[name] = WmsLayer(name=name, title=_text(element, "Title") or name, crs=crs,
                               bounds=bounds,
                               geographic_bounds=geographic,  # type: ignore[arg-type]  # 4 floats
                               attribution=attribution, styles=[s for s in styles if s])
    for child in _children(element, "Layer"):
        _wms_layers(child, crs, attribution, found, version)


# --------------------------------------------------------------------------------------------
# WMTS
# --------------------------------------------------------------------------------------------
def parse_wmts_capabilities(text: bytes, url: str) -> WmtsCapabilities:
    root = _parse(text, url, "WMTS")
    problem = _exception_text(root)
    if problem:
        raise SourceError(f"the WMTS at {redact_url(url)} answered GetCapabilities with an "
                          f"error: {problem}")
    if _local(root) != "Capabilities":
        raise SourceError(f"{redact_url(url)} did not answer with WMTS capabilities (its "
                          f"document is {_local(root)!r}): check that it is a WMTS URL.")
    contents = _child(root, "Contents")
    if contents is None:
        raise SourceError(f"the WMTS capabilities of {redact_url(url)} list no contents.")
    get_tile = ""
    operations = _child(root, "OperationsMetadata")
    for operation in (_children(operations, "Operation") if operations is not None else []):
        if operation.attrib.get("name") != "GetTile":
            continue
        for node in operation.iter():
            if _local(node) == "Get":
                encodings = [(v.text or "") for v in node.iter() if _local(v) == "Value"]
                if not encodings or any("KVP" in value for value in encodings):
                    get_tile = _href(node)
                    break
    sets: Dict[str, TileMatrixSet] = {}
    for node in _children(contents, "TileMatrixSet"):
        identifier = _text(node, "Identifier")
        matrices = []
        for matrix in _children(node, "TileMatrix"):
            try:
                corner = _floats(_text(matrix, "TopLeftCorner"))
                matrices.append(TileMatrix(
                    identifier=_text(matrix, "Identifier"),
                    scale_denominator=float(_text(matrix, "ScaleDenominator")),
                    top_left=(corner[0], corner[1]),
                    tile_size=(int(_text(matrix, "TileWidth")), int(_text(matrix, "TileHeight"))),
                    matrix_size=(int(_text(matrix, "MatrixWidth")),
                                 int(_text(matrix, "MatrixHeight")))))
            except (ValueError, IndexError):
                continue
        if identifier and matrices:
            sets[identifier] = TileMatrixSet(identifier, _text(node, "SupportedCRS"), matrices)
    layers: Dict[str, WmtsLayer] = {}
    for node in _children(contents, "Layer"):
        layer = _wmts_layer(node)
        if layer.identifier:
            layers[layer.identifier] = layer
    service = _child(root, "ServiceIdentification")
    return WmtsCapabilities(title=_text(service, "Title"), get_tile_url=get_tile,
                            layers=layers, matrix_sets=sets)


def _wmts_layer(node: ET.Element) -> WmtsLayer:
    styles: List[str] = []
    for style in _children(node, "Style"):
        name = _text(style, "Identifier")
        if style.attrib.get("isDefault") == "true":
            styles.insert(0, name)
        else:
            styles.append(name)
    links: Dict[str, Dict[str, Tuple[int, int, int, int]]] = {}
    for link in _children(node, "TileMatrixSetLink"):
        limits: Dict[str, Tuple[int, int, int, int]] = {}
        set_limits = _child(link, "TileMatrixSetLimits")
        for limit in (_children(set_limits, "TileMatrixLimits") if set_limits is not None
                      else []):
            try:
                limits[_text(limit, "TileMatrix")] = (
                    int(_text(limit, "MinTileCol")), int(_text(limit, "MinTileRow")),
                    int(_text(limit, "MaxTileCol")), int(_text(limit, "MaxTileRow")))
            except ValueError:
                continue
        links[_text(link, "TileMatrixSet")] = limits
    geographic = None
    box = _child(node, "WGS84BoundingBox")
    if box is not None:
        try:
            lower, upper = _floats(_text(box, "LowerCorner")), _floats(_text(box, "UpperCorner"))
            geographic = (lower[0], lower[1], upper[0], upper[1])
        except (ValueError, IndexError):
            geographic = None
    templates = {resource.attrib.get("format", ""): resource.attrib.get("template", "")
                 for resource in _children(node, "ResourceURL")
                 if resource.attrib.get("resourceType") == "tile"}
    attribution = ""
    for child in node.iter():
        if _local(child) == "Attribution":
            attribution = _text(child, "Title")
            break
    return WmtsLayer(identifier=_text(node, "Identifier"), title=_text(node, "Title"),
                     formats=[(f.text or "").strip() for f in _children(node, "Format")],
                     styles=[s for s in styles if s], matrix_sets=links,
                     geographic_bounds=geographic, resource_templates=templates,
                     attribution=attribution)

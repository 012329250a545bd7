"""Image sources: where a run's pixels come from, as plain data.

An :class:`ImageSource` is one of

* ``file``: a path or any GDAL connection string, with its open options: a GeoTIFF, a VRT, a
  raster table of a GeoPackage (``GPKG:file.gpkg:table``), a zipped raster
  (``/vsizip/archive.zip/scene.tif``), a cloud-optimised GeoTIFF over HTTP(S)
  (``/vsicurl/https://…/scene.tif``), a GDAL service description (``WMS:…``, ``<GDAL_WMS>``);
* ``xyz``: a tile template ``https://host/{z}/{x}/{y}.png`` (also ``{-y}`` for TMS rows and
  ``{q}`` for quadkeys), 256 or 512 px tiles, zoom levels ``zmin``–``zmax``;
* ``wms``: a WMS (URL, layers, styles, CRS, format, version);
* ``wmts``: a WMTS (capabilities URL, layer, tile matrix set, style, format).

Nothing here reads a pixel or opens a connection: :mod:`.web_service` describes a web service's
levels, :mod:`.web_pixels` and :mod:`.http_fetch` fetch its pixels, rasterio opens files.

Credentials (``headers``, a password in a URL, an API key in its query) are kept in memory
only: they are left out of ``repr``, of :meth:`ImageSource.to_metadata` (what the run records)
and of every message, which name the URL through :func:`redact_url`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..errors import MapScribeError

SOURCE_KINDS = ("file", "xyz", "wms", "wmts")
WEB_KINDS = ("xyz", "wms", "wmts")
XYZ_PREFIX = "xyz:"

# XYZ zoom levels a service may declare: at 23 a 256 px world is 2^31 pixels wide, past what
# GDAL's raster sizes hold.
XYZ_ZOOM_RANGE = (0, 22)
DEFAULT_XYZ_ZMAX = 19
TILE_PIXELS = (256, 512)

# Query parameters whose values are credentials, in any case: left out of what is recorded.
_SECRET_NAMES = re.compile(r"(key|token|secret|pass(word|wd)?|signature|sig|auth|credential|"
                           r"session|apikey)", re.IGNORECASE)
REDACTED = "REDACTED"

# What marks a GDAL location as read over the network.
_REMOTE_MARKERS = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss",
                   "/vsiswift", "/vsiwebhdfs", "/vsihdfs", "http://", "https://", "ftp://",
                   "wms:", "wmts:", "<gdal_wms", "wcs:", "eedai:", "plscenes:")


class SourceError(MapScribeError, ValueError):
    """An image source that cannot be used as given, or a service that cannot be read; the
    message names the source (without credentials) and says what to do."""


def redact_url(url: str) -> str:
    """``url`` without a user name or password and with the values of query parameters that
    look like credentials (``key``, ``token``, ``apikey``, …) replaced by ``REDACTED``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_NAMES.search(name) for name, _ in pairs):
            query = urlencode([(name, REDACTED if _SECRET_NAMES.search(name) else value)
                               for name, value in pairs], safe="{}/:,")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, source: "ImageSource") -> str:
    """``text`` (an error from GDAL or the network) with the source's secrets removed."""
    for secret in source.secrets():
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _is_http_url(text: str) -> bool:
    return urlsplit(text).scheme.lower() in ("http", "https") and bool(urlsplit(text).netloc)


@dataclass(frozen=True)
class ImageSource:
    """Where the pixels come from; see the module documentation. Build one with
    :meth:`file`, :meth:`xyz`, :meth:`wms`, :meth:`wmts` or :meth:`parse`."""

    kind: str = "file"
    location: str = ""        # file: path or GDAL string; xyz: template; wms/wmts: service URL
    layers: str = ""          # wms: LAYERS (comma-separated); wmts: the layer
    styles: str = ""          # wms: STYLES; wmts: the style ("" = the layer's default)
    crs: str = ""             # wms: the CRS asked for ("" = EPSG:3857 when offered, else first)
    image_format: str = ""    # e.g. "image/png" ("" = PNG, else JPEG, else the first offered)
    version: str = ""         # wms: "1.3.0" or "1.1.1" ("" = the server's)
    tile_matrix_set: str = ""  # wmts ("" = one in EPSG:3857 when offered, else the first)
    zmin: int = 0             # xyz
    zmax: int = DEFAULT_XYZ_ZMAX  # xyz
    tile_pixels: int = 256    # xyz: tile width in pixels (512 for "retina" tiles)
    attribution: str = ""     # the imagery's credit line, shown and recorded
    name: str = ""            # what people call it (e.g. the QGIS layer's name)
    open_options: Tuple[Tuple[str, str], ...] = ()  # file: GDAL open options
    referer: str = ""
    # HTTP headers sent with every request (an API key, an Authorization resolved by QGIS):
    # kept in memory only, never recorded, logged or shown.
    headers: Tuple[Tuple[str, str], ...] = field(default=(), repr=False)

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def file(cls, path: Union[str, Path], open_options: Optional[Mapping[str, str]] = None,
             name: str = "") -> "ImageSource":
        """A raster file or any GDAL connection string."""
        return cls(kind="file", location=str(path), name=name,
                   open_options=_pairs(open_options))

    @classmethod
    def xyz(cls, template: str, *, zmin: int = 0, zmax: int = DEFAULT_XYZ_ZMAX,
            tile_pixels: int = 256, attribution: str = "",
            headers: Optional[Mapping[str, str]] = None, referer: str = "",
            name: str = "") -> "ImageSource":
        """An XYZ (or TMS with ``{-y}``) tile service in Web Mercator."""
        return cls(kind="xyz", location=template, zmin=int(zmin), zmax=int(zmax),
                   tile_pixels=int(tile_pixels), attribution=attribution,
                   headers=_pairs(headers), referer=referer, name=name)

    @classmethod
    def wms(cls, url: str, layers: str, *, styles: str = "", crs: str = "",
            image_format: str = "", version: str = "", attribution: str = "",
            headers: Optional[Mapping[str, str]] = None, referer: str = "",
            name: str = "") -> "ImageSource":
        """A WMS: its GetMap requests are made at the resolution the model needs."""
        return cls(kind="wms", location=url, layers=layers, styles=styles, crs=crs,
                   image_format=image_format, version=version, attribution=attribution,
                   headers=_pairs(headers), referer=referer, name=name)

    @classmethod
    def wmts(cls, url: str, layer: str, *, tile_matrix_set: str = "", style: str = "",
             image_format: str = "", attribution: str = "",
             headers: Optional[Mapping[str, str]] = None, referer: str = "",
             name: str = "") -> "ImageSource":
        """A WMTS, from its capabilities URL (or its service URL)."""
        return cls(kind="wmts", location=url, layers=layer, styles=style,
                   tile_matrix_set=tile_matrix_set, image_format=image_format,
                   attribution=attribution, headers=_pairs(headers), referer=referer,
                   name=name)

    @classmethod
    def parse(cls, text: Union[str, Path]) -> "ImageSource":
        """From a command-line value: ``xyz:TEMPLATE`` is an XYZ service, anything else a file
        or GDAL string."""
        value = str(text)
        if value[:len(XYZ_PREFIX)].lower() == XYZ_PREFIX:
            return cls.xyz(value[len(XYZ_PREFIX):])
        return cls.file(value)

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise SourceError(f"image source kind {self.kind!r} is not one of "
                              f"{', '.join(SOURCE_KINDS)}.")
        if not str(self.location).strip():
            raise SourceError(f"the {self.kind} image source names no "
                              f"{'file' if self.kind == 'file' else 'URL'}: give one.")
        if self.kind in WEB_KINDS:
            self._check_web()
        for name, value in self.headers:
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name) or "\n" in value \
                    or "\r" in value:
                raise SourceError(f"HTTP header {name!r} of {self.describe()} is not a valid "
                                  "header name and value: give NAME: VALUE on one line.")

    def _check_web(self) -> None:
        shown = redact_url(self.location)
        if not _is_http_url(self.location):
            raise SourceError(f"{self.kind.upper()} source {shown!r} is not an http:// or "
                              "https:// URL: give the service's web address.")
        if self.kind == "xyz":
            template = self.location
            has_row = "{y}" in template or "{-y}" in template
            if not ("{q}" in template or ("{z}" in template and "{x}" in template
                                          and has_row)):
                raise SourceError(f"XYZ template {shown!r} needs {{z}}, {{x}} and {{y}} (or "
                                  "{-y} for TMS rows, or {q} for a quadkey), e.g. "
                                  "https://tile.example.org/{z}/{x}/{y}.png.")
            low, high = XYZ_ZOOM_RANGE
            if not (low <= self.zmin <= self.zmax <= high):
                raise SourceError(f"XYZ zoom levels {self.zmin}–{self.zmax} of {shown!r} must "
                                  f"satisfy {low} ≤ zmin ≤ zmax ≤ {high}.")
            if self.tile_pixels not in TILE_PIXELS:
                raise SourceError(f"XYZ tiles of {self.tile_pixels} px are not supported: "
                                  f"give {' or '.join(map(str, TILE_PIXELS))}.")
        elif not self.layers.strip():
            what = "layers (LAYERS)" if self.kind == "wms" else "a layer"
            raise SourceError(f"the {self.kind.upper()} source {shown!r} needs {what}: e.g. "
                              f"--{'layers' if self.kind == 'wms' else 'layer'} NAME (the "
                              "service's capabilities list them).")

    def __repr__(self) -> str:  # no credential, whatever the location holds
        return f"ImageSource({self.kind}: {self.describe()})"

    # -- what it is --------------------------------------------------------------------------
    @property
    def is_web(self) -> bool:
        """An XYZ, WMS or WMTS service, read by MapScribe's own HTTP client."""
        return self.kind in WEB_KINDS

    @property
    def is_remote(self) -> bool:
        """Read over the network (a web service, or a GDAL location such as /vsicurl/)."""
        if self.is_web:
            return True
        text = self.location.lower()
        return any(marker in text for marker in _REMOTE_MARKERS)

    def describe(self) -> str:
        """The source for people: kind and address, without credentials."""
        if self.kind == "file":
            return _redact_gdal(self.location)
        url = redact_url(self.location)
        if self.kind == "xyz":
            return f"XYZ tiles {url}"
        if self.kind == "wms":
            return f"WMS {url} (layers {self.layers})"
        return f"WMTS {url} (layer {self.layers})"

    @property
    def label(self) -> str:
        """A short name without slashes (for file names and the report's title)."""
        if self.name.strip():
            return _no_slashes(self.name.strip())
        if self.kind == "file":
            text = _redact_gdal(self.location).rstrip("/").replace("\\", "/")
            return text.rsplit("/", 1)[-1].rsplit(":", 1)[-1] or "raster"
        host = urlsplit(self.location).hostname or "service"
        what = self.layers.split(",")[0] if self.layers else ""
        return _no_slashes(f"{self.kind.upper()} {host}" + (f" {what}" if what else ""))

    def secrets(self) -> List[str]:
        """Every credential this source holds (header values, URL password, query keys)."""
        found = [value for _, value in self.headers if value]
        parts = urlsplit(self.location) if self.is_web or "://" in self.location else None
        if parts is not None:
            if parts.password:
                found.append(parts.password)
            found += [value for name, value in parse_qsl(parts.query, keep_blank_values=True)
                      if value and _SECRET_NAMES.search(name)]
        return found

    def http_headers(self) -> Dict[str, str]:
        """The headers to send (the source's own, and its Referer)."""
        headers = {name: value for name, value in self.headers}
        if self.referer and not any(name.lower() == "referer" for name in headers):
            headers["Referer"] = self.referer
        return headers

    def local_files(self) -> List[str]:
        """The local files a ``file`` source reads (the GeoPackage behind ``GPKG:f:table``,
        the archive behind ``/vsizip/``), so an output can be refused when it is one."""
        if self.kind != "file" or self.is_remote:
            return []
        text = self.location
        files = [text]
        match = re.match(r"^[A-Za-z0-9_]+:(.+):[^:/\\]+$", text)
        if match:
            files.append(match.group(1))
        for prefix in ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/"):
            if text.startswith(prefix):
                rest = text[len(prefix):].lstrip("{")
                for suffix in (".zip", ".tar", ".tgz", ".tar.gz", ".gz", ".7z", ".rar"):
                    at = rest.lower().find(suffix)
                    if at > 0:
                        files.append(rest[:at + len(suffix)])
                        break
        return files

    def to_metadata(self) -> Dict[str, Any]:
        """What the run records about the source: never a credential (header values are left
        out, URLs redacted)."""
        record: Dict[str, Any] = {"kind": self.kind, "location": self.describe()
                                  if self.kind == "file" else redact_url(self.location),
                                  "name": self.label, "attribution": self.attribution}
        if self.kind == "file":
            record["open_options"] = [f"{k}={REDACTED if _SECRET_NAMES.search(k) else v}"
                                      for k, v in self.open_options]
        else:
            record.update(layers=self.layers, styles=self.styles, crs=self.crs,
                          image_format=self.image_format, version=self.version,
                          tile_matrix_set=self.tile_matrix_set)
            if self.kind == "xyz":
                record.update(zmin=self.zmin, zmax=self.zmax, tile_pixels=self.tile_pixels)
            # Which headers were sent, never what they held.
            record["http_headers"] = sorted(name for name, _ in self.headers)
        return record


def as_image_source(value: Union[str, Path, ImageSource]) -> ImageSource:
    """An ImageSource from what a caller gave: a source, or a path / GDAL string (``xyz:…``
    for an XYZ template)."""
    if isinstance(value, ImageSource):
        return value
    if isinstance(value, (str, Path)):
        return ImageSource.parse(value)
    raise SourceError(f"the raster must be a path, a GDAL string or an ImageSource, not "
                      f"{type(value).__name__}.")


def with_query(url: str, params: Sequence[Tuple[str, str]], drop: Sequence[str] = ()) -> str:
    """``url`` with ``params`` appended to its query, after removing parameters whose names are
    in ``drop`` or ``params`` (compared without case, as OGC services do)."""
    parts = urlsplit(url)
    replaced = {name.lower() for name, _ in params} | {name.lower() for name in drop}
    kept = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
            if name.lower() not in replaced]
    query = urlencode(kept + list(params), quote_via=quote, safe="/:,")
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))


def _pairs(mapping: Optional[Mapping[str, str]]) -> Tuple[Tuple[str, str], ...]:
    if not mapping:
        return ()
    return tuple((str(k), str(v)) for k, v in mapping.items())


def _no_slashes(text: str) -> str:
    return text.replace("/", "-").replace("\\", "-")


def _redact_gdal(location: str) -> str:
    """A GDAL string with any URL in it redacted."""
    return re.sub(r"https?://[^\s\"'<>,]+", lambda m: redact_url(m.group(0)), location)

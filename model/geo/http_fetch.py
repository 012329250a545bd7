"""MapScribe's HTTP client for web map services: polite, patient, and honest about failures.

* **Polite**: a User-Agent naming MapScribe and its version on every request; at most
  ``max_requests_per_second`` requests a second across all threads of a run (a shared
  :class:`RateLimiter`); HTTP 429 (and 503) with ``Retry-After`` pause every thread for as long
  as the server asks (up to ``max_retry_after_s``).
* **Patient**: timeouts, dropped connections and 5xx answers are retried ``retries`` times with
  exponential back-off from ``backoff_s``.
* **Honest**: "no tile here" (404, 204, 410) is an answer (an empty tile, not an error); a tile
  that still fails after the retries raises :class:`TileUnavailableError` with the reason, which the
  run records as a ``failed`` tile; a refusal (401, 403, 407) raises :class:`SourceError` at
  once, since retrying cannot help.
* **Cached**: answers are kept in a :class:`~.http_cache.TileCache` when one is given.

Every URL in a message goes through :func:`~.sources.redact_url`; header values never appear.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from ..version import __version__
from .http_cache import MISSING, TileCache
from .sources import SourceError, redact_url

log = logging.getLogger(__name__)

USER_AGENT = f"MapScribe/{__version__} (QGIS plugin and engine that caption imagery for blind " \
             "and low-vision people)"

# No map tile is this big; a server sending more is refused rather than read into memory.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024

MISSING_CODES = (204, 404, 410)
DENIED_CODES = (401, 403, 407)
THROTTLE_CODES = (429, 503)

# The first bytes of the image formats map services send.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00",
                b"MM\x00*")


@dataclass(frozen=True)
class NetworkParams:
    """How web sources are fetched. The defaults are meant to be polite to a public service;
    raise ``max_requests_per_second`` only where the provider's terms allow it."""

    cache: bool = True                 # keep fetched tiles in the disk cache
    cache_dir: Optional[str] = None    # None: MapScribe's cache folder (http_cache)
    cache_max_mb: int = 1024
    cache_max_age_days: float = 7.0
    max_requests_per_second: float = 10.0  # 0: no cap (only for servers of your own)
    connections: int = 8               # tiles read at once
    timeout_s: float = 30.0            # per request
    retries: int = 4                   # after the first try, for timeouts, 5xx and 429
    backoff_s: float = 0.5             # first wait before a retry; doubled each time
    max_retry_after_s: float = 120.0   # the longest Retry-After honoured as given
    max_consecutive_failures: int = 64  # failed tiles in a row before the run stops

    def __post_init__(self) -> None:
        from ..errors import ParameterError

        if not self.max_requests_per_second >= 0:
            raise ParameterError("max_requests_per_second must be 0 (no cap) or positive, not "
                                 f"{self.max_requests_per_second!r}.")
        for name, minimum in (("connections", 1), ("retries", 0), ("cache_max_mb", 1),
                              ("max_consecutive_failures", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ParameterError(f"{name} must be a whole number ≥ {minimum}, not "
                                     f"{value!r}.")
        for name in ("timeout_s", "backoff_s", "max_retry_after_s", "cache_max_age_days"):
            if not getattr(self, name) > 0:
                raise ParameterError(f"{name} must be positive, not {getattr(self, name)!r}.")

    def tile_cache(self) -> Optional[TileCache]:
        if not self.cache:
            return None
        from .http_cache import default_cache_dir

        folder = default_cache_dir() / "tiles" if self.cache_dir is None else self.cache_dir
        return TileCache(folder, self.cache_max_mb * 1024 * 1024,
                         self.cache_max_age_days * 86400.0)


class TileUnavailableError(SourceError):
    """One tile could not be fetched after the retries; the run records it as ``failed``."""


class FetchStoppedError(Exception):
    """The run was stopped while a request waited."""


class RateLimiter:
    """At most ``rate`` starts a second across threads, and a shared pause after a 429."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next, self._paused_until)
            self._next = start + self.interval
        delay = start - now
        if delay > 0 and stop.wait(delay):
            raise FetchStoppedError()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


class FetchStats:
    """Counts of one run's requests, shared by its threads."""

    FIELDS = ("requests", "ok", "missing", "retries", "throttled", "cache_hits",
              "memory_hits", "bytes", "failed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Dict[str, int] = {name: 0 for name in self.FIELDS}
        self.started = time.monotonic()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def to_dict(self) -> Dict[str, float]:
        with self._lock:
            result: Dict[str, float] = dict(self.counts)
        seconds = max(time.monotonic() - self.started, 1e-9)
        result["requests_per_second"] = round(result["requests"] / seconds, 2)
        return result


class HttpFetcher:
    """GET with the politeness, retries and cache of the module documentation."""

    def __init__(self, params: NetworkParams, headers: Optional[Mapping[str, str]] = None, *,
                 cache: Optional[TileCache] = None, limiter: Optional[RateLimiter] = None,
                 stats: Optional[FetchStats] = None, stop: Optional[threading.Event] = None):
        self.params = params
        self.headers = {"User-Agent": USER_AGENT, **dict(headers or {})}
        self.cache = cache
        self.limiter = limiter or RateLimiter(params.max_requests_per_second)
        self.stats = stats or FetchStats()
        self.stop = stop or threading.Event()
        # No redirect to another scheme (file:, ftp:) and no proxy settings but the system's.
        self._opener = urllib.request.build_opener(_HttpOnlyRedirects())

    def get(self, url: str, *, image: bool = True, cached: bool = True,
            retries: Optional[int] = None, fail_fast: bool = False) -> Optional[bytes]:
        """The body at ``url``, or None when the server says there is nothing there.

        ``image``: the body must be an image (else the attempt counts as failed, with what the
        server said). ``retries``: instead of the params'. ``fail_fast``: a host that cannot be
        found or refuses connections is not tried again (a first contact).
        Raises :class:`TileUnavailableError` after the retries, :class:`SourceError` when access
        is refused, :class:`FetchStoppedError` when the run is stopped.
        """
        if cached and self.cache is not None:
            body = self.cache.get(url)
            if body is not None:
                self.stats.add("cache_hits")
                return None if body == MISSING else body
        params, attempt, reason = self.params, 0, ""
        while True:
            if self.stop.is_set():
                raise FetchStoppedError()
            self.limiter.wait(self.stop)
            self.stats.add("requests")
            wait = params.backoff_s * (2 ** attempt)
            try:
                status, body, retry_after = self._request(url)
            except (OSError, http.client.HTTPException, ValueError) as error:
                reason, unreachable = _network_reason(error, url)
                if fail_fast and unreachable:
                    raise TileUnavailableError(f"{redact_url(url)}: {reason}") from None
            else:
                if status in MISSING_CODES:
                    self.stats.add("missing")
                    self._keep(url, MISSING, cached)
                    return None
                if status in DENIED_CODES:
                    raise SourceError(
                        f"{redact_url(url)} refused access (HTTP {status}): the service needs "
                        "credentials, or other ones (an API key, a login set in QGIS's "
                        "authentication, a Referer). Nothing more was requested.")
                if status == 200 and (not image or _is_image(body)):
                    self.stats.add("ok")
                    self.stats.add("bytes", len(body))
                    self._keep(url, body, cached)
                    return body
                if status == 200:
                    reason = f"the answer is not an image: {_describe_body(body)}"
                elif status in THROTTLE_CODES:
                    self.stats.add("throttled")
                    reason = f"HTTP {status} (too many requests)"
                    if retry_after is not None:
                        wait = min(retry_after, params.max_retry_after_s)
                        self.limiter.pause(wait)
                elif status >= 500:
                    reason = f"HTTP {status} (server error)"
                else:
                    raise TileUnavailableError(f"{redact_url(url)}: HTTP {status}: "
                                          f"{_describe_body(body)}")
            if attempt >= (params.retries if retries is None else retries):
                raise TileUnavailableError(f"{redact_url(url)}: {reason} (after {attempt + 1} "
                                      f"tries)")
            attempt += 1
            self.stats.add("retries")
            log.debug("retrying %s in %.1f s: %s", redact_url(url), wait, reason)
            if self.stop.wait(wait):
                raise FetchStoppedError()

    def _request(self, url: str):
        request = urllib.request.Request(url, headers=self.headers)
        try:
            response = self._opener.open(request, timeout=self.params.timeout_s)
        except urllib.error.HTTPError as error:
            with error:
                body = error.read(64 * 1024)
                return error.code, body, _retry_after(error.headers.get("Retry-After"))
        with response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
            if len(body) > MAX_RESPONSE_BYTES:
                raise ValueError(f"an answer of more than {MAX_RESPONSE_BYTES // 2 ** 20} MB")
            return response.status, body, _retry_after(response.headers.get("Retry-After"))

    def _keep(self, url: str, body: bytes, cached: bool) -> None:
        if cached and self.cache is not None:
            self.cache.put(url, body)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not newurl.lower().startswith(("http://", "https://")):
            raise urllib.error.HTTPError(newurl, code, "redirect to a URL that is not HTTP(S) "
                                         "refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_image(body: bytes) -> bool:
    return body.startswith(_IMAGE_MAGIC) or (body[:4] == b"RIFF" and body[8:12] == b"WEBP")


def _describe_body(body: bytes) -> str:
    """What a non-image answer says, for a message: an OGC exception's text, or its start."""
    text = body[:2000].decode("utf-8", "replace")
    if "ServiceException" in text or "ExceptionReport" in text:
        import re

        found = re.search(r"<(?:\w+:)?(?:ServiceException|ExceptionText)[^>]*>(.*?)</", text,
                          re.DOTALL)
        if found:
            return "the service says: " + " ".join(found.group(1).split())[:300]
    shown = " ".join(text.split())[:120]
    return f"{len(body)} bytes beginning {shown!r}" if body else "an empty answer"


def _network_reason(error: BaseException, url: str) -> Tuple[str, bool]:
    """A network failure in words people know, and whether the host could not be reached at
    all (unknown, or refusing connections)."""
    from urllib.parse import urlsplit

    host = urlsplit(url).netloc.rsplit("@", 1)[-1]
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(cause, socket.gaierror):
        return (f"the host name of {host} cannot be resolved (no network, or a wrong address)",
                True)
    if isinstance(cause, ConnectionRefusedError):
        return f"nothing answers at {host} (connection refused)", True
    if isinstance(cause, (socket.timeout, TimeoutError)):
        return f"{host} did not answer within the timeout", False
    if isinstance(cause, ssl.SSLError):
        return f"the secure connection to {host} failed ({cause})", True
    if isinstance(cause, (ConnectionResetError, http.client.RemoteDisconnected,
                          http.client.IncompleteRead, BrokenPipeError)):
        return f"{host} closed the connection before the answer was complete", False
    return f"{type(cause).__name__}: {cause}", False

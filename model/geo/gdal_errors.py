"""The one way MapScribe talks to GDAL/OGR's error reporting.

GDAL 3.6 has no scoped exception mode, and switching osgeo's exceptions on globally would change
behaviour for every other user of osgeo in the process (QGIS and its plugins included). So every
call into osgeo runs inside :func:`quiet_gdal`, which silences GDAL's printed errors and gives the
caller the last one to put into its own message.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

UNKNOWN_ERROR = "unknown GDAL error"


@contextmanager
def quiet_gdal() -> Iterator[Callable[[], str]]:
    """Silence GDAL's printed errors in the block and yield a function giving the last one
    (never empty: :data:`UNKNOWN_ERROR` when GDAL said nothing).

    Works whether or not someone in the process switched on osgeo's exceptions (QGIS plugins
    may): callers check for None results and catch RuntimeError alike.
    """
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    gdal.ErrorReset()
    try:
        yield lambda: gdal.GetLastErrorMsg() or UNKNOWN_ERROR
    finally:
        gdal.PopErrorHandler()


def ogr_failure(call: Callable[[], Any], last_error: Callable[[], str]) -> Optional[str]:
    """Run an OGR call returning an error code; the error's text, or None when it worked.

    Handles both conventions of the bindings: error codes, and RuntimeError when someone in
    the process switched osgeo's exceptions on.
    """
    try:
        code = call()
    except RuntimeError as error:
        return str(error) or last_error()
    return last_error() if code != 0 else None


@contextmanager
def ogr_transaction(dataset: Any, last_error: Callable[[], str],
                    cannot_start: Callable[[str], Exception],
                    cannot_commit: Callable[[str], Exception]) -> Iterator[None]:
    """The block's writes to ``dataset`` in one transaction: committed when the block ends,
    rolled back when it raises (Ctrl-C included), so they are all in the file or none is.
    ``cannot_start`` / ``cannot_commit`` make the caller's error from GDAL's text."""
    problem = ogr_failure(dataset.StartTransaction, last_error)
    if problem:
        raise cannot_start(problem)
    try:
        yield
        problem = ogr_failure(dataset.CommitTransaction, last_error)
        if problem:
            raise cannot_commit(problem)
    except BaseException:
        ogr_failure(dataset.RollbackTransaction, last_error)
        raise

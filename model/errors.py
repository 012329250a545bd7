"""The root of every error the engine raises on purpose.

A :class:`MapScribeError` carries a message written for people: it names the file, field or
value at fault and says what to do. Front doors (command line, dock, Processing, Python API)
catch ``MapScribeError`` and show its message as it is; anything else reaching them is a bug and
is reported with its traceback. Subclasses keep a builtin base (``ValueError``, ``OSError`` …)
where callers have long caught that.
"""

from __future__ import annotations


class MapScribeError(Exception):
    """An error whose message people can act on; see the module documentation."""


class ParameterError(MapScribeError, ValueError):
    """A parameter outside what the engine accepts (a negative batch size, an unknown split …);
    the message names the parameter and the values it takes."""


class OutputExistsError(MapScribeError, FileExistsError):
    """The output file exists and replacing it was not allowed; the message says how to allow
    it or where else to write."""

"""A device people can pick, and the error of a device that cannot be used, as plain data
(no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MapScribeError


class DeviceError(MapScribeError, ValueError):
    """A device name that cannot be used here."""


@dataclass(frozen=True)
class DeviceChoice:
    """``key`` is what :func:`~.device.resolve_device` takes; ``label`` is for people."""

    key: str
    label: str

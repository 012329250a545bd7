"""Opening an image file as RGB, whatever its mode on disk."""

from __future__ import annotations

import io
import os
from pathlib import Path

from .records import DatasetError


def load_rgb_image(path: "str | os.PathLike"):
    """Open an image file as an RGB ``PIL.Image`` (grayscale, RGBA, palette ... are converted)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except FileNotFoundError:
        raise DatasetError(f"{path}: the image file is missing") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"{path}: the image cannot be read ({error})") from None

"""Opening an image file as RGB, whatever its mode on disk, with ceilings checked before any
pixel is decoded: a small file can declare a huge image (a "decompression bomb")."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from .records import DatasetError

# The largest image decoded: 8192 × 8192 px (caption datasets hold chips of a few hundred
# pixels a side; a larger raster is captioned tile by tile with `mapscribe caption`).
MAX_IMAGE_PIXELS = 8192 * 8192


# The largest image file read into memory.
MAX_IMAGE_BYTES = 256 * 2**20


class ImageTooLargeError(DatasetError):
    """An image (or image file) past :data:`MAX_IMAGE_PIXELS` or :data:`MAX_IMAGE_BYTES`."""


def open_image(path: "str | os.PathLike"):
    """Open ``path`` with Pillow from memory, its size checked but no pixel decoded yet.

    Raises FileNotFoundError for a missing file or one that is not a regular file (a pipe or a
    device would block or never end), :class:`ImageTooLargeError` past the ceilings, and
    Pillow's own errors for files it cannot read.
    """
    from PIL import Image

    path = Path(path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise FileNotFoundError(f"{path} is not a regular file")
    if info.st_size > MAX_IMAGE_BYTES:
        raise ImageTooLargeError(f"{path}: the image file is {info.st_size / 2**20:.0f} MB, "
                                 f"more than the {MAX_IMAGE_BYTES // 2**20} MB MapScribe reads "
                                 "as one image; cut it into tiles (or caption it as a raster "
                                 "with `mapscribe caption`)")
    try:
        image = Image.open(io.BytesIO(path.read_bytes()))
    except Image.DecompressionBombError:
        # Pillow's own ceiling (twice its MAX_IMAGE_PIXELS), far above ours.
        raise ImageTooLargeError(f"{path}: the image declares more than "
                                 f"{2 * (Image.MAX_IMAGE_PIXELS or 0):,} px, far more than the "
                                 f"{MAX_IMAGE_PIXELS:,} px MapScribe decodes (a decompression "
                                 "bomb); cut it into tiles, or caption it as a raster with "
                                 "`mapscribe caption`") from None
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageTooLargeError(f"{path}: the image is {width} × {height} px, more than the "
                                 f"{MAX_IMAGE_PIXELS:,} px MapScribe decodes (a file this "
                                 "small declaring so many pixels may be a decompression "
                                 "bomb); cut it into tiles, or caption it as a raster with "
                                 "`mapscribe caption`")
    return image


def load_rgb_image(path: "str | os.PathLike"):
    """Open an image file as an RGB ``PIL.Image`` (grayscale, RGBA, palette ... are converted)."""
    path = Path(path)
    try:
        with open_image(path) as image:
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except FileNotFoundError:
        raise DatasetError(f"{path}: the image file is missing") from None
    except DatasetError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"{path}: the image cannot be read ({error})") from None

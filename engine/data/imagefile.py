"""Decode one image file into RGB pixels, or say in one short phrase why it cannot be used.

The format is decided by PIL from the content, never from the extension. Every way a
file can fail ends as ``UnusableImage(reason)``, so a data set scan never crashes on a
bad file: the reason goes into the scan report instead.
"""

from __future__ import annotations

import warnings
from typing import BinaryIO, Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

# "MPO" is how PIL names the multi-picture JPEGs many cameras write.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP", "TIFF", "PPM"})
MAX_PIXELS = 100_000_000
"""Refuse images above 100 megapixels (checked from the header, before any decoding)."""

# We enforce MAX_PIXELS ourselves; PIL's own warning (from ~89 MP) would only add noise.
# PIL's hard DecompressionBombError (from ~179 MP) stays on and is reported as "too large".
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# PIL plugins also warn about damaged metadata ("Corrupt EXIF data", ...), one console line
# per file; the scan report already says which files were skipped and why.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

# Magic numbers of formats whose signature is long enough to be trusted: a file that starts
# like a PNG but that PIL cannot open is a damaged image, not "some other kind of file".
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


class UnusableImage(Exception):
    """The file cannot be used; ``str(exc)`` is the reason shown to the user."""


def read_image(path: str, size: Optional[int] = None) -> Optional[np.ndarray]:
    """Fully decode ``path``; return uint8 [size, size, 3] pixels, or None when ``size`` is None.

    Decoding fully even without ``size`` is what catches truncated files, which PIL
    otherwise opens happily from their header alone.
    """
    try:
        with open(path, "rb") as handle:
            return _decode(handle, size)
    except UnusableImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnusableImage(f"image too large ({_short(exc)})") from None
    except MemoryError:
        raise UnusableImage("image too large to decode (out of memory)") from None
    except PermissionError:
        raise UnusableImage("unreadable (permission denied)") from None
    except OSError as exc:
        if exc.errno is not None:  # the OS failed us; PIL's own OSErrors carry no errno
            raise UnusableImage(f"unreadable (I/O error: {exc.strerror})") from None
        raise UnusableImage(f"truncated or corrupt image ({_short(exc)})") from None
    except Exception as exc:  # PIL plugins raise many types for damaged data
        raise UnusableImage(f"truncated or corrupt image ({_short(exc)})") from None


def _decode(handle: BinaryIO, size: Optional[int]) -> Optional[np.ndarray]:
    try:
        image = Image.open(handle)
    except UnidentifiedImageError:
        handle.seek(0)
        head = handle.read(16)
        for signature, name in _SIGNATURES:
            if head.startswith(signature):
                raise UnusableImage(f"truncated or corrupt image ({name} header unreadable)") from None
        raise UnusableImage("not an image (unrecognised content)") from None
    with image:
        if image.format not in ACCEPTED_FORMATS:
            accepted = ", ".join(sorted(ACCEPTED_FORMATS - {"MPO"}))
            raise UnusableImage(f"unsupported format {image.format} (accepted: {accepted})")
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise UnusableImage(
                f"image too large ({width} x {height} = {width * height / 1e6:.0f} megapixels;"
                f" limit {MAX_PIXELS // 1_000_000})"
            )
        if width < 1 or height < 1:
            raise UnusableImage(f"truncated or corrupt image (size {width} x {height})")
        if size is not None and image.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale while staying >= size on both sides.
            image.draft("RGB", (size, size))
        image.load()  # decodes the first frame of animated files
        rgb = to_rgb(image)
        if size is None:
            return None
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode PIL decodes into 8-bit RGB.

    Transparency is composited on black: a transparent pixel carries no content, and black
    (all zeros) is the neutral input the network also sees in padding. White would make
    transparent regions look like bright content, and dropping alpha (as Keras' loader does)
    would surface whatever colour the editor left in invisible pixels.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return _wide_to_gray(image).convert("RGB")
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        mode == "P" and "transparency" in image.info
    )
    try:
        if has_alpha:
            rgba = image.convert("RGBA")
            black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            return Image.alpha_composite(black, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError:
        raise UnusableImage(f"unsupported colour mode {mode}") from None


def _wide_to_gray(image: Image.Image) -> Image.Image:
    """Scale 16-bit integer (0..65535) or float (0..1) pixels to 8-bit grey.

    PIL's own conversion clips instead of scaling, which turns most 16-bit images white.
    Mode "I" is treated as 16-bit because that is what PNG and TIFF files decode to.
    """
    values = np.asarray(image)
    if image.mode == "F":
        scaled = np.clip(np.nan_to_num(values), 0.0, 1.0) * 255.0 + 0.5
    else:
        scaled = (np.clip(values.astype(np.int64), 0, 65535) * 255 + 32767) // 65535
    return Image.fromarray(scaled.astype(np.uint8))  # 2-D uint8 is mode "L"


def _short(exc: BaseException) -> str:
    """PIL's message, first line only and capped, so a skip reason stays one readable line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."

"""Hypothesis: random bytes and damaged valid files of every format never crash a scan.

A bad file may only ever become a skip with a one-line reason; anything else that
escapes (an exception, a wrong pixel shape) is a bug.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.data.dataset import load_dataset, scan_dataset
from engine.data.imagefile import UnusableImage, read_image


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _valid_files() -> dict[str, bytes]:
    """Small valid files of each accepted format and odd mode, plus one unsupported format."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    palette = rgb.convert("P")
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    animated = io.BytesIO()
    frames[0].save(animated, format="GIF", save_all=True, append_images=frames[1:], duration=40)
    return {
        "png": _encode(rgb, "PNG"),
        "jpeg": _encode(rgb, "JPEG", quality=90),
        "cmyk.jpeg": _encode(rgb.convert("CMYK"), "JPEG"),
        "progressive.jpeg": _encode(rgb, "JPEG", progressive=True),
        "gif": animated.getvalue(),
        "bmp": _encode(rgb, "BMP"),
        "webp": _encode(rgb, "WEBP", quality=80),
        "tiff": _encode(rgb, "TIFF"),
        "deflate.tiff": _encode(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "ppm": _encode(rgb, "PPM"),
        "pgm": _encode(rgb.convert("L"), "PPM"),
        "16bit.png": _encode(Image.fromarray(rng.integers(0, 65536, (12, 10), dtype=np.uint16)), "PNG"),
        "palette.png": _encode(palette, "PNG", transparency=3),
        "rgba.png": _encode(rgb.convert("RGBA"), "PNG"),
        "la.png": _encode(rgb.convert("LA"), "PNG"),
        "ico": _encode(rgb, "ICO"),
    }


VALID = _valid_files()

# Damaged metadata makes PIL warn; pytest resets the filter engine.data.imagefile sets for this.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """A valid file cut short at a random point, with up to three bytes flipped."""
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    data = data[: draw(st.integers(0, len(data)))]
    if data:
        for where, mask in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)), max_size=3)):
            data[where] ^= mask
    return bytes(data)


ANY_FILE = st.binary(max_size=1024) | damaged_files()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("a", "b"):
        (root / name).mkdir()
        Image.new("RGB", (6, 6), (1, 2, 3)).save(root / name / "good.png")
    return root


def test_every_valid_sample_is_used(dataset):
    """The fuzz seeds themselves decode, so damage is what the other tests exercise."""
    for name, data in VALID.items():
        path = dataset / f"seed.{name}"
        path.write_bytes(data)
        if name == "ico":
            with pytest.raises(UnusableImage, match="^unsupported format ICO"):
                read_image(str(path), 8)
        else:
            assert read_image(str(path), 8).shape == (8, 8, 3), name


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=ANY_FILE, size=st.sampled_from([None, 4, 16]))
def test_read_image_returns_pixels_or_a_reason(dataset, data, size):
    path = dataset / "single.bin"
    path.write_bytes(data)
    try:
        pixels = read_image(str(path), size)
    except UnusableImage as exc:
        reason = str(exc)
        assert reason and "\n" not in reason and len(reason) < 200
        return
    if size is None:
        assert pixels is None
    else:
        assert pixels.shape == (size, size, 3) and pixels.dtype == np.uint8


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=ANY_FILE)
def test_scan_and_load_only_skip(dataset, data):
    fuzz = dataset / "a" / "fuzz.img"
    fuzz.write_bytes(data)
    report = scan_dataset(dataset)
    loaded = load_dataset(dataset, 8)
    assert loaded.report == report
    used = "a/fuzz.img" in report.files
    skipped = [item for item in report.skipped if item["path"] == "a/fuzz.img"]
    assert used != bool(skipped)
    assert loaded.images.shape == (len(report.files), 8, 8, 3)
    assert report.counts == {"a": 1 + used, "b": 1}

"""Dataset scanner and loader on real image files written into tmp_path."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.dataset import available_memory, load_dataset, scan_dataset
from engine.data.scan import DatasetError
from engine.stop import StopRequested, StopToken


def save(path: Path, image: Image.Image, fmt: str | None = None, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt, **options)
    return path


def solid(path: Path, colour=(10, 20, 30), size=(8, 8), fmt: str | None = None) -> Path:
    return save(path, Image.new("RGB", size, colour), fmt)


def two_classes(root: Path, per_class: int = 2) -> Path:
    for name in ("a", "b"):
        for i in range(per_class):
            solid(root / name / f"{i}.png", (i, 0, 0))
    return root


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose header claims ``width`` x ``height`` (data is tiny)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def reasons(report) -> dict[str, str]:
    return {item["path"]: item["reason"] for item in report.skipped}


# ------------------------------------------------------------------------ fatal errors


def error_of(root, loader=scan_dataset) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        loader(root) if loader is scan_dataset else loader(root, 16)
    message = str(info.value)
    assert "\n" not in message
    return info.value


def test_missing_folder(tmp_path):
    assert str(error_of(tmp_path / "nope")) == f"data folder not found: {tmp_path / 'nope'}"


def test_path_is_a_file(tmp_path):
    target = solid(tmp_path / "x.png")
    assert str(error_of(target)) == f"data path is not a folder: {target}"


@pytest.mark.parametrize("content", ["empty", "files only", "hidden only"])
def test_no_class_folders(tmp_path, content):
    if content == "files only":
        solid(tmp_path / "x.png")
    elif content == "hidden only":
        solid(tmp_path / ".git" / "x.png")
    message = str(error_of(tmp_path))
    assert message.startswith(f"no class folders in {tmp_path}:")


def test_only_one_class(tmp_path):
    solid(tmp_path / "cats" / "1.png")
    message = str(error_of(tmp_path))
    assert message == f"only one class folder ('cats') in {tmp_path}: a classifier needs at least two"


@pytest.mark.parametrize("loader", [scan_dataset, load_dataset])
def test_class_without_usable_image(tmp_path, loader):
    solid(tmp_path / "a" / "1.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    error = error_of(tmp_path, loader)
    assert str(error) == (
        f"class 'b' has no usable image in {tmp_path / 'b'} "
        "(2 skipped there; first: 'b/empty.png': empty file)"
    )


def test_scan_error_keeps_full_report(tmp_path):
    solid(tmp_path / "a" / "1.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    error = error_of(tmp_path)
    assert error.report is not None
    assert error.report.counts == {"a": 1, "b": 0}
    assert reasons(error.report) == {"b/notes.txt": "not an image (unrecognised content)"}


def test_empty_class_folder(tmp_path):
    solid(tmp_path / "a" / "1.png")
    (tmp_path / "b").mkdir()
    assert str(error_of(tmp_path, load_dataset)) == (
        f"class 'b' has no usable image in {tmp_path / 'b'} (the folder is empty)"
    )


# ------------------------------------------------------------------------ skip reasons


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest resets our filter
def test_every_skip_reason(tmp_path):
    root = two_classes(tmp_path / "data")
    bad = root / "a"
    (bad / "empty.png").write_bytes(b"")
    (bad / "trunc.png").write_bytes(encoded(noise((32, 32)), "PNG")[:1500])
    (bad / "trunc.jpg").write_bytes(encoded(noise((64, 64)), "JPEG", quality=95)[:2000])
    (bad / "header.png").write_bytes(encoded(noise((32, 32)), "PNG")[:12])
    (bad / "random.jpg").write_bytes(np.random.default_rng(1).bytes(3000))
    (bad / "notes.txt").write_text("just some text\n")
    (bad / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    save(bad / ".thumbs" / "t.png", Image.new("RGB", (4, 4)))
    save(bad / "icon.ico", Image.new("RGB", (16, 16)), "ICO")
    (bad / "big.png").write_bytes(png_claiming(12_000, 10_000))
    (bad / "bomb.png").write_bytes(png_claiming(30_000, 30_000))
    os.symlink(tmp_path / "nowhere.png", bad / "dangling.png")
    os.symlink(bad / "self.png", bad / "self.png")
    os.mkfifo(bad / "pipe.png")
    (root / "README.txt").write_text("about this data")
    (root / ".demo-data.json").write_text("{}")  # a hidden file beside the classes: not data, not listed
    solid(root / ".cache" / "x.png")

    report = scan_dataset(root)

    assert report.files == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    found = reasons(report)
    ico = found.pop("a/icon.ico")
    assert ico.startswith("unsupported format ICO (accepted: BMP, GIF, JPEG, PNG, PPM, TIFF, WEBP)")
    assert found.pop("a/trunc.png").startswith("truncated or corrupt image (")
    assert found.pop("a/trunc.jpg").startswith("truncated or corrupt image (image file is truncated")
    assert found.pop("a/bomb.png").startswith("image too large (Image size (900000000 pixels)")
    assert found == {
        ".cache": "hidden folder, ignored",
        "README.txt": "file outside any class folder, ignored",
        "a/.DS_Store": "hidden file",
        "a/.thumbs": "hidden folder, ignored",
        "a/big.png": "image too large (12000 x 10000 = 120 megapixels; limit 100)",
        "a/dangling.png": "broken symlink",
        "a/empty.png": "empty file",
        "a/header.png": "truncated or corrupt image (PNG header unreadable)",
        "a/notes.txt": "not an image (unrecognised content)",
        "a/pipe.png": "not a regular file (device, pipe or socket), ignored",
        "a/random.jpg": "not an image (unrecognised content)",
        "a/self.png": "broken symlink (it loops)",
    }
    assert [item["path"] for item in report.skipped] == sorted(
        (item["path"] for item in report.skipped), key=lambda p: p.split("/")
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file; see the unprivileged variant")
def test_unreadable_file(tmp_path):
    root = two_classes(tmp_path)
    locked = solid(root / "a" / "locked.png")
    locked.chmod(0)
    try:
        assert reasons(scan_dataset(root)) == {"a/locked.png": "unreadable (permission denied)"}
    finally:
        locked.chmod(0o644)


@pytest.mark.skipif(os.geteuid() != 0 or not hasattr(os, "fork"), reason="needs root to drop to 'nobody'")
def test_unreadable_file_as_unprivileged_user():
    """As root nothing is unreadable, so a forked child drops to uid 65534 and scans."""
    top = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        top.chmod(0o755)
        root = two_classes(top / "data")
        locked = solid(root / "a" / "locked.png")
        scan_dataset(root)  # import every lazy module while we can still read them all
        locked.chmod(0)
        for folder, _, _ in os.walk(top):
            Path(folder).chmod(0o755)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 1
            try:
                os.close(read_end)
                os.setgid(65534)
                os.setuid(65534)
                os.write(write_end, json.dumps(reasons(scan_dataset(root))).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            output = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert json.loads(output) == {"a/locked.png": "unreadable (permission denied)"}
    finally:
        shutil.rmtree(top)


# ------------------------------------------------------------------------ odd modes used


def test_odd_modes_are_converted_and_used(tmp_path):
    root = tmp_path / "data"
    odd = root / "odd"
    save(odd / "cmyk.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), quality=95)
    save(odd / "deep.png", Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16)))
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 255, 255, 0, 200, 0] + [0] * 762)
    palette.paste(1, (4, 0, 8, 8))
    save(odd / "palette.png", palette, transparency=0)
    rgba = Image.new("RGBA", (8, 8), (200, 100, 50, 255))
    rgba.paste((255, 255, 255, 0), (0, 0, 4, 8))
    save(odd / "rgba.png", rgba)
    save(odd / "la.png", Image.new("LA", (8, 8), (200, 255)))
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    frames[0].save(odd / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    save(odd / "gray.png", Image.new("L", (8, 8), 77))
    save(odd / "bits.bmp", Image.new("1", (8, 8), 1))
    save(odd / "plain.tif", Image.new("RGB", (8, 8), (1, 2, 3)))
    save(odd / "plain.webp", Image.new("RGB", (8, 8), (4, 5, 6)), lossless=True)
    save(odd / "plain.ppm", Image.new("RGB", (8, 8), (7, 8, 9)))
    save(odd / "plain.pgm", Image.new("L", (8, 8), 10))
    solid(root / "other" / "x.png")

    loaded = load_dataset(root, 8)
    pixels = dict(zip(loaded.report.files, loaded.images))
    assert loaded.report.skipped == []
    assert np.abs(pixels["odd/cmyk.jpg"].astype(int) - [255, 0, 0]).max() <= 3
    assert (pixels["odd/deep.png"] == 128).all()
    assert (pixels["odd/palette.png"][:, :4] == 0).all()  # transparent: composited on black
    assert (pixels["odd/palette.png"][:, 4:] == [0, 200, 0]).all()
    assert (pixels["odd/rgba.png"][:, :4] == 0).all()
    assert (pixels["odd/rgba.png"][:, 4:] == [200, 100, 50]).all()
    assert (pixels["odd/la.png"] == 200).all()
    assert (pixels["odd/anim.gif"] == [255, 0, 0]).all()  # the first frame
    assert (pixels["odd/gray.png"] == 77).all()
    assert (pixels["odd/bits.bmp"] == 255).all()
    assert (pixels["odd/plain.tif"] == [1, 2, 3]).all()
    assert (pixels["odd/plain.webp"] == [4, 5, 6]).all()
    assert (pixels["odd/plain.ppm"] == [7, 8, 9]).all()
    assert (pixels["odd/plain.pgm"] == 10).all()


def test_unicode_and_space_names(tmp_path):
    cats = solid(tmp_path / "chats noirs" / "ĉaŝo 猫 1.png", (9, 9, 9))
    solid(tmp_path / "dogs" / "x.png")
    loaded = load_dataset(tmp_path, 4)
    assert loaded.report.classes == ["chats noirs", "dogs"]
    assert loaded.report.files[0] == cats.relative_to(tmp_path).as_posix()
    assert (loaded.images[0] == 9).all()
    assert "  chats noirs: 1 images" in loaded.report.summary_lines()


# ------------------------------------------------------------------------ symlinks, order


def test_symlinks_followed_without_loops_or_double_counting(tmp_path):
    root = two_classes(tmp_path / "data")
    outside = tmp_path / "outside"
    solid(outside / "o1.png")
    solid(outside / "deep" / "o2.png")
    os.symlink(outside, root / "c")  # a class living elsewhere: followed
    os.symlink(outside, root / "a" / "again")  # the same folder twice: not counted twice
    os.symlink(root / "a", root / "a" / "loop")  # back to its own class
    os.symlink(root, root / "b" / "up")  # back to the data set root
    os.symlink(root / "a", root / "b" / "other")  # into another class: images would count twice
    os.symlink(outside, outside / "deep" / "round")  # a loop outside the data set

    report = scan_dataset(root)

    assert report.classes == ["a", "b", "c"]
    assert report.counts == {"a": 2, "b": 2, "c": 2}
    assert report.files[-2:] == ["c/deep/o2.png", "c/o1.png"]
    assert reasons(report) == {
        "a/again": "same folder as 'c' (reached through a symlink), ignored",
        "a/loop": "symlink loop (leads back to 'a'), ignored",
        "b/other": "symlink to 'a' inside the data set, ignored (its images would count twice)",
        "b/up": "symlink loop (leads back to '.'), ignored",
        "c/deep/round": "symlink loop (leads back to 'c'), ignored",
    }


def test_order_is_deterministic_and_pixels_follow_it(tmp_path):
    names = ["b 1.png", "b.png", "B.png", "a10.png", "a2.png", "b/1.png", "b/0/z.png", "é.png"]
    names += [f"n{i:02d}.png" for i in range(30)]
    colours = {}
    for i, name in enumerate(names):
        colours[f"x/{name}"] = (i, 255 - i, 7)
        solid(tmp_path / "x" / name, colours[f"x/{name}"])
    solid(tmp_path / "y" / "only.png", (1, 1, 1))

    first = scan_dataset(tmp_path)
    assert first.files[:8] == [
        "x/B.png", "x/a10.png", "x/a2.png", "x/b/0/z.png", "x/b/1.png", "x/b 1.png", "x/b.png", "x/n00.png",
    ]
    assert first.files[-2:] == ["x/é.png", "y/only.png"]
    assert first.labels == [0] * len(names) + [1]
    assert scan_dataset(tmp_path) == first
    loaded = load_dataset(tmp_path, 4)
    assert loaded.report == first
    for rel, pixels in zip(loaded.report.files[:-1], loaded.images):
        assert (pixels == colours[rel]).all(), rel
    assert loaded.labels.dtype == np.int32 and loaded.labels.tolist() == first.labels


# ------------------------------------------------------------------------ pixels, resize


def test_solid_colour_survives_resize(tmp_path):
    solid(tmp_path / "a" / "wide.png", (123, 45, 67), size=(50, 30))
    solid(tmp_path / "b" / "big.jpg", (200, 120, 40), size=(400, 300))  # shrunk via JPEG draft
    loaded = load_dataset(tmp_path, 16)
    assert loaded.images.shape == (2, 16, 16, 3) and loaded.images.dtype == np.uint8
    assert (loaded.images[0] == [123, 45, 67]).all()
    assert np.abs(loaded.images[1].astype(int) - [200, 120, 40]).max() <= 3


def test_resize_squashes_instead_of_cropping(tmp_path):
    halves = Image.new("RGB", (64, 16), (255, 0, 0))
    halves.paste((0, 0, 255), (32, 0, 64, 16))
    save(tmp_path / "a" / "halves.png", halves)
    solid(tmp_path / "b" / "x.png")
    image = load_dataset(tmp_path, 16).images[0]
    assert (image[:, :7] == [255, 0, 0]).all() and (image[:, 9:] == [0, 0, 255]).all()


# ------------------------------------------------------------------------ memory, cache


def test_available_memory_is_known_here():
    assert available_memory() > 0


def test_large_data_set_goes_to_a_memmap(tmp_path):
    root = two_classes(tmp_path / "data", per_class=3)
    in_memory = load_dataset(root, 8)
    assert not in_memory.on_disk and not isinstance(in_memory.images, np.memmap)
    on_disk = load_dataset(root, 8, cache_dir=tmp_path / "cache", memory_budget=100)
    assert on_disk.on_disk and isinstance(on_disk.images, np.memmap)
    assert not on_disk.images.flags.writeable
    np.testing.assert_array_equal(on_disk.images, in_memory.images)
    assert on_disk.report == in_memory.report
    again = load_dataset(root, 8, cache_dir=tmp_path / "cache", memory_budget=100)  # from the cache
    assert again.on_disk and isinstance(again.images, np.memmap)
    np.testing.assert_array_equal(again.images, in_memory.images)


def test_memmap_needs_a_cache_folder(tmp_path):
    two_classes(tmp_path)
    with pytest.raises(DatasetError, match=r"^data set .* more than the memory budget .*give a cache folder"):
        load_dataset(tmp_path, 8, memory_budget=100)


def cache_entries(cache: Path) -> list[str]:
    return sorted(path.name for path in cache.iterdir())


def test_cache_is_reused_until_a_file_changes(tmp_path):
    root = two_classes(tmp_path / "data")
    cache = tmp_path / "cache"
    target = solid(root / "a" / "z.bmp", (10, 10, 10), fmt="BMP")
    first = load_dataset(root, 8, cache_dir=cache)
    assert (first.images[2] == 10).all()
    assert len(cache_entries(cache)) == 1

    # Same size and mtime: an identical load by the key, so the cached pixels come back.
    before = target.stat()
    solid(target, (99, 99, 99), fmt="BMP")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    assert (load_dataset(root, 8, cache_dir=cache).images[2] == 10).all()

    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    changed = load_dataset(root, 8, cache_dir=cache)
    assert (changed.images[2] == 99).all()
    assert len(cache_entries(cache)) == 1  # the stale entry was pruned
    assert changed.report == first.report


def test_other_image_size_gets_its_own_cache_entry(tmp_path):
    root = two_classes(tmp_path / "data")
    cache = tmp_path / "cache"
    load_dataset(root, 8, cache_dir=cache)
    assert load_dataset(root, 4, cache_dir=cache).images.shape == (4, 4, 4, 3)
    assert len(cache_entries(cache)) == 2


@pytest.mark.parametrize("memory_budget", [None, 0], ids=["in memory", "memmap"])
def test_stopped_load_leaves_no_cache_behind(tmp_path, memory_budget):
    root = two_classes(tmp_path / "data", per_class=20)
    cache = tmp_path / "cache"
    stop = StopToken()
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if done >= 5:
            stop.set()

    with pytest.raises(StopRequested):
        load_dataset(root, 8, cache_dir=cache, progress=progress, stop=stop, memory_budget=memory_budget)
    assert 5 <= calls[-1][0] < 40
    assert cache_entries(cache) == []  # not even a hidden temporary folder
    reloaded = load_dataset(root, 8, cache_dir=cache, memory_budget=memory_budget)
    assert reloaded.images.shape == (40, 8, 8, 3)


def test_damaged_cache_is_rebuilt(tmp_path):
    root = two_classes(tmp_path / "data")
    cache = tmp_path / "cache"
    good = load_dataset(root, 8, cache_dir=cache).images
    (entry,) = cache.iterdir()
    pixels = entry / "pixels.npy"
    pixels.write_bytes(pixels.read_bytes()[:200])
    np.testing.assert_array_equal(load_dataset(root, 8, cache_dir=cache).images, good)


# ------------------------------------------------------------------------ progress, stop, report


def test_progress_reaches_the_total(tmp_path):
    two_classes(tmp_path, per_class=5)
    calls: list[tuple[int, int]] = []
    scan_dataset(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 10) and calls[-1] == (10, 10)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_stop_token_interrupts_the_scan(tmp_path):
    two_classes(tmp_path)
    stop = StopToken()
    stop.set()
    with pytest.raises(StopRequested):
        scan_dataset(tmp_path, stop=stop)


def test_record_and_summary(tmp_path):
    two_classes(tmp_path)
    for i in range(3):
        (tmp_path / "b" / f"junk{i}.txt").write_text("x")
    report = scan_dataset(tmp_path)
    assert report.root == str(tmp_path)
    assert report.to_record() == {
        "root": str(tmp_path),
        "classes": ["a", "b"],
        "counts": {"a": 2, "b": 2},
        "skipped": [{"path": f"b/junk{i}.txt", "reason": "not an image (unrecognised content)"} for i in range(3)],
    }
    json.dumps(report.to_record())
    assert report.summary_lines(max_skipped=2) == [
        f"Data set: {tmp_path}",
        "2 classes, 4 usable images, 3 skipped",
        "  a: 2 images",
        "  b: 2 images",
        "Skipped:",
        "  b/junk0.txt: not an image (unrecognised content)",
        "  b/junk1.txt: not an image (unrecognised content)",
        "  ... and 1 more",
    ]


def test_relative_root_is_made_absolute(tmp_path, monkeypatch):
    two_classes(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert scan_dataset("data").root == str(tmp_path / "data")

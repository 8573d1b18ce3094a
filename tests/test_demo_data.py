"""The demo data set: reproducible bytes, the promised layout, and no half-written set ever looks done."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from engine.data import demo as demo_data
from engine.data.demo import CLASSES, DEMO_NAME, demo_data_exists, generate_demo_data

PER_CLASS = 3
SIZE = 32


def tree_hash(root: Path) -> str:
    """One digest over every file's relative path and bytes, so any change shows."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def make(root: Path, **kwargs) -> Path:
    kwargs = {"per_class": PER_CLASS, "image_size": SIZE, **kwargs}
    return generate_demo_data(root, **kwargs)


def test_same_seed_gives_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = make(tmp_path / "a")
    second = make(tmp_path / "b")
    other = make(tmp_path / "c", seed=1)
    assert tree_hash(first) == tree_hash(second)
    assert tree_hash(first) != tree_hash(other)


def test_layout_has_every_class_with_decodable_images_at_the_requested_size(tmp_path: Path) -> None:
    root = make(tmp_path)
    assert root == tmp_path / DEMO_NAME
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(CLASSES)
    for name in CLASSES:
        files = sorted((root / name).glob("*.png"))
        assert len(files) == PER_CLASS
        for path in files:
            with Image.open(path) as image:
                image.load()
                assert image.size == (SIZE, SIZE)
                assert image.mode == "RGB"
    assert demo_data_exists(tmp_path)


def test_images_differ_within_a_class(tmp_path: Path) -> None:
    root = make(tmp_path)
    for name in CLASSES:
        digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / name).glob("*.png")}
        assert len(digests) == PER_CLASS


def test_progress_counts_up_to_the_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    make(tmp_path, progress=lambda done, total: calls.append((done, total)))
    total = PER_CLASS * len(CLASSES)
    assert calls == [(n, total) for n in range(1, total + 1)]


def test_rerun_without_force_reuses_and_force_rewrites(tmp_path: Path) -> None:
    root = make(tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    calls: list[tuple[int, int]] = []

    assert make(tmp_path, progress=lambda d, t: calls.append((d, t))) == root
    assert calls == []
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == stamps

    before = tree_hash(root)
    inode = root.stat().st_ino
    make(tmp_path, force=True, progress=lambda d, t: calls.append((d, t)))
    assert len(calls) == PER_CLASS * len(CLASSES)
    assert root.stat().st_ino != inode  # a fresh folder was renamed into place
    assert tree_hash(root) == before
    assert [p.name for p in tmp_path.iterdir()] == [DEMO_NAME]


def test_other_settings_replace_the_existing_set(tmp_path: Path) -> None:
    make(tmp_path)
    root = make(tmp_path, per_class=PER_CLASS + 1)
    assert all(len(list((root / n).glob("*.png"))) == PER_CLASS + 1 for n in CLASSES)
    assert demo_data_exists(tmp_path)


def test_interrupted_generation_leaves_nothing_that_looks_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = demo_data._write_image
    written = 0

    def failing_write(image: Image.Image, path: Path) -> None:
        nonlocal written
        if written == 7:
            raise OSError("disk full")
        real_write(image, path)
        written += 1

    monkeypatch.setattr(demo_data, "_write_image", failing_write)
    with pytest.raises(OSError, match="disk full"):
        make(tmp_path)
    assert written == 7
    assert not demo_data_exists(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the half-built temporary folder is gone too


def test_interrupted_regeneration_keeps_the_previous_set(tmp_path: Path) -> None:
    root = make(tmp_path)
    before = tree_hash(root)

    def stop(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make(tmp_path, force=True, progress=stop)
    assert demo_data_exists(tmp_path)
    assert tree_hash(root) == before
    assert [p.name for p in tmp_path.iterdir()] == [DEMO_NAME]


def test_a_missing_image_makes_the_set_incomplete_and_it_is_rebuilt(tmp_path: Path) -> None:
    root = make(tmp_path)
    before = tree_hash(root)
    next((root / CLASSES[2]).glob("*.png")).unlink()
    assert not demo_data_exists(tmp_path)
    make(tmp_path)
    assert demo_data_exists(tmp_path)
    assert tree_hash(root) == before


def test_missing_folder_is_not_a_data_set(tmp_path: Path) -> None:
    assert not demo_data_exists(tmp_path)
    (tmp_path / DEMO_NAME / CLASSES[0]).mkdir(parents=True)
    assert not demo_data_exists(tmp_path)


@pytest.mark.parametrize(
    ("setting", "value", "label"),
    [("per_class", 0, "per class"), ("image_size", 8, "image size"), ("seed", -1, "seed")],
)
def test_bad_settings_are_refused_with_the_setting_named(
    tmp_path: Path, setting: str, value: int, label: str
) -> None:
    with pytest.raises(ValueError, match=f"demo data {label}"):
        make(tmp_path, **{setting: value})
    assert not (tmp_path / DEMO_NAME).exists()


def test_the_manifest_recommends_the_size_the_demo_learns_at(tmp_path: Path) -> None:
    root = make(tmp_path)
    manifest = json.loads((root / demo_data.MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["recommended"] == {"image_size": demo_data.DEMO_IMAGE_SIZE} and manifest["per_class"] == PER_CLASS


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_log_has_no_carriage_returns_or_padding() -> None:
    from engine.cli.data import DemoProgress

    log = io.StringIO()
    progress = DemoProgress(log)
    for done in range(1, 101):
        progress(done, 100)
    progress.finish("demo data set ready: data/shapes")
    lines = log.getvalue().split("\n")
    assert lines == [f"writing demo images {n}/100" for n in range(10, 101, 10)] + \
        ["demo data set ready: data/shapes", ""]
    terminal = _Terminal()
    progress = DemoProgress(terminal)
    for done in range(1, 101):
        progress(done, 100)
    progress.finish("demo data set ready: data/shapes")
    assert terminal.getvalue() == "\rwriting demo images 50/100\rwriting demo images 100/100\r\033[K" \
                                  "demo data set ready: data/shapes\n"

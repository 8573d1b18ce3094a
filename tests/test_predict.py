"""Predicting on files: decoding like training, class names from beside the model, safe metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.artifacts.predict import META_NAME, image_files, load_predictor, predict_files
from engine.artifacts.safe_load import ModelLoadError
from engine.data.imagefile import read_image
from tests.helpers import write_image_folder


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (untrained) seed CNN saved as .keras: predictions need no training to be checked."""
    from engine.train.models.seed import build_seed_cnn

    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_seed_cnn(32, 3, seed=3).save(path)
    return path


def test_predictions_equal_the_model_on_the_decoded_pixels(saved_model: Path, tmp_path: Path) -> None:
    import keras

    data = write_image_folder(tmp_path / "data", classes=3, per_class=2, size=40)  # resized to 32 on the way
    (data / "class_0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    files = image_files(data)
    predictor = load_predictor(saved_model)
    assert predictor.classes == ["class 0", "class 1", "class 2"] and predictor.image_size == 32
    results = predict_files(predictor, files, chunk=4)
    broken = [r for r in results if r.error]
    assert [r.path.name for r in broken] == ["broken.png"] and "corrupt" in broken[0].error
    good = [r for r in results if not r.error]
    pixels = np.stack([read_image(str(r.path), 32) for r in good]).astype(np.float32)
    expected = keras.saving.load_model(saved_model).predict_on_batch(pixels)
    assert [r.class_name for r in good] == [f"class {i}" for i in expected.argmax(axis=1)]
    assert np.allclose([r.confidence for r in good], expected.max(axis=1), atol=1e-6)


def test_image_files_skips_hidden_entries_and_sorts(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("b/2.png", "a.png", ".secret.png", ".hidden/x.png"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)] == ["a.png", "b/2.png"]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        image_files(tmp_path / "missing")


def test_export_folder_metadata_is_checked(saved_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.keras").write_bytes(saved_model.read_bytes())
    meta = {"format": "keras", "model": "model.keras", "classes": ["cat", "dog", "owl"], "input": {"height": 32}}
    (folder / META_NAME).write_text(json.dumps(meta))
    assert load_predictor(folder).classes == ["cat", "dog", "owl"]
    assert load_predictor(folder / "model.keras").classes == ["cat", "dog", "owl"]  # the JSON beside it

    (folder / META_NAME).write_text(json.dumps({**meta, "model": "../../elsewhere.keras"}))
    with pytest.raises(ModelLoadError, match="'model' must be 'model.keras'"):
        load_predictor(folder)
    (folder / META_NAME).write_text(json.dumps({**meta, "classes": "cat"}))
    with pytest.raises(ModelLoadError, match="'classes' must be a list"):
        load_predictor(folder)
    (folder / META_NAME).write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        load_predictor(folder)


def test_a_folder_that_is_neither_export_nor_experiment_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="neither an export folder"):
        load_predictor(tmp_path)

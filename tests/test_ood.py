"""The out-of-distribution check: pixel statistics of an image against an experiment's validation images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.artifacts.ood import (
    FEATURES,
    MIN_THRESHOLD,
    PASS_SHARE,
    check_files,
    experiment_of,
    fit_reference,
    image_features,
    reference_for,
)
from tests.helpers import write_image_folder


def folder_images(root: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(root.rglob("*.png"))])


def test_features_are_what_their_names_say():
    flat = np.full((1, 16, 16, 3), (0, 0, 255), np.uint8)
    stripes = np.zeros((1, 16, 16, 3), np.uint8)
    stripes[:, :, ::2] = 255
    features = dict(zip(FEATURES, image_features(np.concatenate([flat, stripes])).T))
    assert features["brightness"] == pytest.approx([0.114 * 255, 127.5], abs=0.5)
    assert features["contrast"] == pytest.approx([0.0, 127.5], abs=0.5)
    assert features["edge strength"] == pytest.approx([0.0, 127.5], abs=0.5)  # every column flips, rows never
    assert features["colourfulness"] == pytest.approx([255.0, 0.0], abs=0.5)


def test_plain_colour_is_flagged_and_images_like_the_reference_pass(tmp_path: Path):
    reference = fit_reference(folder_images(write_image_folder(tmp_path / "ref", classes=3, per_class=20)))
    assert reference.threshold >= MIN_THRESHOLD and reference.images == 60
    fresh = folder_images(write_image_folder(tmp_path / "fresh", classes=3, per_class=20, seed=7))
    verdicts = reference.check(fresh)
    assert sum(v.unusual for v in verdicts) <= (1 - PASS_SHARE) * len(verdicts) + 1
    blue = reference.check(np.full((1, 32, 32, 3), (0, 0, 255), np.uint8))[0]
    assert blue.unusual and blue.score > blue.threshold
    words = reference.words(blue)
    assert words.startswith("looks unlike the training data: ")
    assert "contrast 0 (validation images" in words and "edge strength 0" in words
    assert "looks like the training data" in reference.words(verdicts[0]) or verdicts[0].unusual


def test_the_threshold_lets_the_calibration_images_pass():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(400, 8, 8, 3)).astype(np.uint8)
    images[:200] //= 2  # two kinds of image, so the statistics spread
    reference = fit_reference(images)
    flagged = sum(v.unusual for v in reference.check(images))
    assert flagged <= (1 - PASS_SHARE) * len(images)


@pytest.fixture
def experiment(trained_experiment: Path) -> Path:
    return trained_experiment


@pytest.mark.slow
def test_a_real_run_passes_its_own_validation_images_and_flags_a_blue_square(experiment: Path, tmp_path: Path):
    from engine.artifacts.evaluate import validation_set
    from engine.record import store

    record = store.load(experiment)
    checkpoint = experiment / record["runs"][0]["checkpoint"]
    assert experiment_of(checkpoint) == experiment and experiment_of(experiment) == experiment
    assert experiment_of(tmp_path) is None
    reference = reference_for(experiment)
    validation = validation_set(experiment, record)
    assert reference.images == len(validation.images) == record["dataset"]["val_count"]
    files = [validation.root / name for name in validation.files]
    verdicts = check_files(reference, files, 32)
    assert verdicts and not any(v.unusual for v in verdicts)
    blue = tmp_path / "blue.png"
    Image.fromarray(np.full((50, 50, 3), (20, 60, 230), np.uint8)).save(blue)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    flagged, unusable = check_files(reference, [blue, broken], 32)
    assert flagged.unusual and unusable is None

"""Does an image look like the data the model was trained on? A cheap check that explains itself.

A classifier always answers with one of its classes, often very sure of itself on an image that
resembles nothing it saw (a plain blue square comes back "circle 99.4%"), so its own confidence
cannot tell. Instead each image is described by four pixel statistics a person can picture,
computed at the size the model sees: brightness, contrast, edge strength and colourfulness. The
experiment's validation images (held out from training, drawn from the same folders) give each
statistic's typical value (median) and spread (median absolute deviation, as a robust standard
deviation). An image's score is its largest distance from typical in those spreads; the threshold
is the score that 99% of the validation images stay within, so a warning means "further out than
almost every image of the kind the model was trained on", and the statistic that is furthest out
says in what way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from engine.data.imagefile import UnusableImage, read_image
from engine.record import store as rec

FEATURES = ("brightness", "contrast", "edge strength", "colourfulness")
PASS_SHARE = 0.99  # of the validation images within the threshold
MIN_THRESHOLD = 4.0  # robust standard deviations: a small validation set must not flag ordinary images
MIN_SPREAD = 1.0  # 0-255 units: a statistic every validation image shares exactly still has some room
MAD_TO_SD = 1.4826  # median absolute deviation of a normal distribution, in standard deviations


def image_features(pixels: np.ndarray) -> np.ndarray:
    """[N, S, S, 3] RGB (0-255) -> [N, 4]: brightness (mean grey level), contrast (standard deviation
    of grey), edge strength (mean absolute difference between neighbouring pixels) and colourfulness
    (mean of each pixel's largest minus smallest channel), all on the 0-255 scale."""
    rgb = np.asarray(pixels, dtype=np.float32)
    if rgb.ndim == 3:
        rgb = rgb[None]
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    across = np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))
    down = np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2))
    return np.stack([grey.mean(axis=(1, 2)), grey.std(axis=(1, 2)), (across + down) / 2,
                     (rgb.max(axis=3) - rgb.min(axis=3)).mean(axis=(1, 2))], axis=1)


@dataclass(frozen=True)
class Familiarity:
    """How one image compares with the validation images."""

    score: float  # largest distance from typical, in robust standard deviations
    threshold: float
    values: tuple[float, ...]  # the image's statistics, in FEATURES order
    outliers: tuple[int, ...]  # indices of the statistics beyond the threshold, furthest first

    @property
    def unusual(self) -> bool:
        return self.score > self.threshold


@dataclass(frozen=True)
class Reference:
    """The validation images' statistics: what "looks like the training data" means here."""

    median: np.ndarray  # [F]
    spread: np.ndarray  # [F] robust standard deviation
    low: np.ndarray  # [F] 1st percentile: the range quoted to the user
    high: np.ndarray  # [F] 99th percentile
    threshold: float
    images: int

    def check(self, pixels: np.ndarray) -> list[Familiarity]:
        """One verdict per image of ``pixels`` ([N, S, S, 3] at the model's input size)."""
        features = image_features(pixels)
        distances = np.abs(features - self.median) / self.spread
        out = []
        for values, distance in zip(features, distances):
            order = [int(i) for i in np.argsort(-distance) if distance[i] > self.threshold]
            out.append(Familiarity(float(distance.max()), self.threshold, tuple(float(v) for v in values),
                                   tuple(order)))
        return out

    def words(self, verdict: Familiarity) -> str:
        """'looks unlike the training data: contrast 0 (validation images 38-71), ...' or that it passes. The
        distance is in robust standard deviations; the limit is what PASS_SHARE of the validation images
        stay within."""
        if not verdict.unusual:
            return f"looks like the training data (distance {verdict.score:.1f}; flagged beyond {verdict.threshold:.1f})"
        reasons = [f"{FEATURES[i]} {verdict.values[i]:.0f} (validation images {self.low[i]:.0f}–{self.high[i]:.0f})"
                   for i in verdict.outliers]
        return ("looks unlike the training data: " + ", ".join(reasons) +
                "; the prediction may mean little")


def fit_reference(images: np.ndarray) -> Reference:
    """Statistics of ``images`` (the validation set, uint8 [N, S, S, 3]) and the threshold that
    PASS_SHARE of them stay within (at least MIN_THRESHOLD)."""
    if len(images) == 0:
        raise ValueError("no validation images to compare with")
    features = image_features(images)
    median = np.median(features, axis=0)
    spread = np.maximum(MAD_TO_SD * np.median(np.abs(features - median), axis=0), MIN_SPREAD)
    scores = (np.abs(features - median) / spread).max(axis=1)
    threshold = max(float(np.quantile(scores, PASS_SHARE)), MIN_THRESHOLD)
    return Reference(median, spread, np.percentile(features, 1, axis=0), np.percentile(features, 99, axis=0),
                     threshold, len(images))


def experiment_of(model_source: Path | str) -> Optional[Path]:
    """The experiment folder a model belongs to: the folder itself, or the one holding the
    checkpoint (``<experiment>/bs32/best.keras``); None for exports and loose files."""
    source = Path(model_source)
    candidates = [source] if source.is_dir() else [source.parent, source.parent.parent]
    return next((folder for folder in candidates if (folder / rec.RECORD_NAME).is_file()), None)


def reference_for(experiment_dir: Path | str, record: Optional[dict[str, Any]] = None) -> Reference:
    """The reference of an experiment, from its validation images (the data folder must still exist;
    raises engine.artifacts.evaluate.EvaluationError naming it otherwise)."""
    from engine.artifacts.evaluate import validation_set

    folder = Path(experiment_dir)
    validation = validation_set(folder, record if record is not None else rec.load(folder))
    return fit_reference(validation.images)


def check_files(reference: Reference, paths: list[Path], size: int) -> list[Optional[Familiarity]]:
    """A verdict per file, decoded at the model's input ``size`` as for predicting; None when the
    file is not a usable image."""
    out: list[Optional[Familiarity]] = []
    for path in paths:
        try:
            pixels = read_image(str(path), size)
        except UnusableImage:
            out.append(None)
            continue
        out.append(reference.check(pixels[None])[0])
    return out

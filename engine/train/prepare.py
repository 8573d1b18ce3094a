"""Check an experiment's data and settings before any training: user errors surface first.

Nothing here imports TensorFlow at module level, so the command line answers a
bad folder or setting in a moment, with one line and no TensorFlow start-up noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from engine.config import ExperimentConfig
from engine.data.dataset import load_dataset
from engine.data.decode import LoadedDataset
from engine.data.recommend import with_image_size
from engine.data.split import stratified_split
from engine.train.models.settings import check_model_settings
from engine.events import Listener, LogMessage, ignore
from engine.stop import StopToken
from engine.train import plan
from engine.train.devices import DeviceFacts, PrecisionChoice, choose_precision, detect


@dataclass
class Prepared:
    """What every run of an experiment shares."""

    config: ExperimentConfig
    data: LoadedDataset
    train_idx: np.ndarray
    val_idx: np.ndarray
    facts: DeviceFacts
    precision: PrecisionChoice
    reference_batch: int


def decode_progress(listener: Listener, every_s: float = 2.0) -> Callable[[int, int], None]:
    """Tell the user how decoding goes on a large folder, a line every few seconds at most."""
    last = [time.monotonic()]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if 0 < done < total and now - last[0] >= every_s:
            last[0] = now
            listener(LogMessage("info", f"decoding images: {done}/{total}"))

    return report


def prepare(config: ExperimentConfig, listener: Listener = ignore, stop: Optional[StopToken] = None) -> Prepared:
    """Validate settings and data; raises ConfigError, DatasetError or SplitError with one clear line."""
    config = with_image_size(config.validate(), listener)  # the record keeps the size trained at, never auto
    check_model_settings(config)  # a missing weights file or model is named before any image is decoded
    data = load_dataset(config.data_dir, config.image_size, cache_dir=Path(config.out) / ".cache",
                        progress=decode_progress(listener), stop=stop)
    labels = np.asarray(data.labels)
    train_idx, val_idx = stratified_split(labels, data.report.classes, config.val_split, config.seed)
    for size in config.batch_sizes:
        if size > len(train_idx):
            listener(LogMessage("warning", f"batch size {size} exceeds the {len(train_idx)} training images: "
                                           "each epoch is one full-batch step"))
    facts = detect()
    return Prepared(config, data, train_idx, val_idx, facts, choose_precision(config.precision, facts),
                    plan.reference_batch(config.batch_sizes, config.lr_reference_batch))

"""What precise BN costs: one calibration (engine.train.bn_calibration) against one epoch of training.

    python -m engine.measure.bn_calibration_cost [--model mobilenetv3small] [--image-size 150]
                                                 [--batch-size 32] [--train-images 1875] [--rounds 3]

Builds the model from scratch, then alternates, ``--rounds`` times: a few training steps
(scaled to an epoch of ``--train-images``), a calibration as the trainer runs it (traced, 256
images), and a calibration by eager calls with the momentum changed per batch (the simpler way,
for comparison). Prints seconds and the ratios; the first round includes tracing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def eager_calibration(model, layers, images) -> None:
    """The per-batch-momentum version: a running plain average, one eager call per batch."""
    momenta = [layer.momentum for layer in layers]
    for i, batch in enumerate(images):
        for layer in layers:
            layer.momentum = i / (i + 1)
        model(batch, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv3small")
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=1875, help="an epoch's images (the demo data's)")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from engine.config import ExperimentConfig
    from engine.train.bn_calibration import CALIBRATION_BATCH, CALIBRATION_SAMPLES, BatchNormCalibration
    from engine.train.models.build import build_model

    size, batch = args.image_size, args.batch_size
    config = ExperimentConfig(data_dir=".", batch_sizes=[batch], image_size=size, model=args.model, weights="none")
    model = build_model(config, 5, seed=0).model
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", jit_compile=False)
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (batch * args.steps, size, size, 3)).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((pixels, rng.integers(0, 5, len(pixels)))).batch(batch)
    images = tf.data.Dataset.from_tensor_slices(pixels[:CALIBRATION_SAMPLES] if len(pixels) >= CALIBRATION_SAMPLES
                                                else np.resize(pixels, (CALIBRATION_SAMPLES, size, size, 3)))
    images = images.batch(CALIBRATION_BATCH)
    callback = BatchNormCalibration(images)
    callback.set_model(model)
    callback.on_train_begin()
    steps_per_epoch = math.ceil(args.train_images / batch)
    print(f"{args.model} at {size} px, batch {batch}: {len(callback.layers)} BN layers; calibration on "
          f"{CALIBRATION_SAMPLES} images; an epoch is {steps_per_epoch} steps")
    for round_ in range(1, args.rounds + 1):
        began = time.perf_counter()
        model.fit(train, epochs=1, verbose=0)
        epoch = (time.perf_counter() - began) / args.steps * steps_per_epoch
        began = time.perf_counter()
        callback.on_test_begin()
        traced = time.perf_counter() - began
        began = time.perf_counter()
        eager_calibration(model, callback.layers, images)
        eager = time.perf_counter() - began
        print(f"round {round_}: epoch (scaled) {epoch:7.1f} s | calibration traced {traced:5.2f} s "
              f"({100 * traced / epoch:4.1f}% of the epoch) | eager {eager:5.2f} s ({eager / traced:.1f}x traced)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

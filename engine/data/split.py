"""Stratified, seeded train/validation split: identical for every batch size of an experiment."""

from __future__ import annotations

import hashlib

import numpy as np


class SplitError(ValueError):
    """The split would leave a class or a set empty; the message names the class."""


def stratified_split(labels: np.ndarray, classes: list[str], val_split: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train, validation) indices, ``val_split`` of each class held out.

    Each class keeps at least one image on each side; a class too small for that is
    an error rather than a silently unfair comparison.
    """
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for label, name in enumerate(classes):
        members = np.flatnonzero(labels == label)
        n_val = int(round(len(members) * val_split))
        if n_val < 1:
            raise SplitError(f"class '{name}': {len(members)} image(s) leave none for validation at "
                             f"split {val_split}; add images or raise the validation split")
        if n_val >= len(members):
            raise SplitError(f"class '{name}': {len(members)} image(s) leave none for training at "
                             f"split {val_split}; add images or lower the validation split")
        shuffled = rng.permutation(members)
        val.append(shuffled[:n_val])
        train.append(shuffled[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def split_digest(files: list[str], train: np.ndarray, val: np.ndarray) -> str:
    """SHA-256 over the two file lists, so records can prove two runs saw the same split."""
    digest = hashlib.sha256()
    for tag, indices in ((b"train", train), (b"val", val)):
        digest.update(tag)
        for i in indices:
            digest.update(files[int(i)].encode("utf-8") + b"\0")
    return digest.hexdigest()

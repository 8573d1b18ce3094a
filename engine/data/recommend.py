"""What ``image_size`` auto means for a data set: the size it says it learns at, else the seed's 150 px.

The demo set's manifest records the size its default CNN learns at (``"recommended"``); manifests
written before that entry existed are recognised by the demo's name and classes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from engine.config import FALLBACK_IMAGE_SIZE, ExperimentConfig
from engine.data.demo import CLASSES, DEMO_IMAGE_SIZE, DEMO_NAME, MANIFEST_NAME, read_manifest
from engine.events import Listener, LogMessage, ignore


def recommended_image_size(data_dir: Path | str) -> Optional[int]:
    """The image size the data set in ``data_dir`` recommends, or None when it recommends none."""
    folder = Path(data_dir)
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    size = (manifest.get("recommended") or {}).get("image_size")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    if "recommended" not in manifest and folder.name == DEMO_NAME and manifest.get("classes") == list(CLASSES):
        return DEMO_IMAGE_SIZE  # a demo set drawn before its manifest said so
    return None


def image_size_choice(config: ExperimentConfig) -> tuple[int, str]:
    """The image size ``config`` trains at, and where it came from, in words."""
    if config.image_size is not None:
        return config.image_size, "as set"
    recommended = recommended_image_size(config.data_dir)
    if recommended is not None:
        return recommended, f"auto: recommended by {Path(config.data_dir) / MANIFEST_NAME}"
    return FALLBACK_IMAGE_SIZE, "auto: the data set recommends none, so the default"


def resolve_image_size(config: ExperimentConfig) -> int:
    """An explicit size wins; auto is the data set's recommended size, else FALLBACK_IMAGE_SIZE."""
    return image_size_choice(config)[0]


def with_image_size(config: ExperimentConfig, listener: Listener = ignore) -> ExperimentConfig:
    """``config`` with its image size resolved (what the record keeps), saying where the size came from."""
    size, source = image_size_choice(config)
    listener(LogMessage("info", f"image size: {size} px ({source})"))
    return dataclasses.replace(config, image_size=size)

"""Remember the last used settings between launches (QSettings; tests pass their own file).

The config is stored as one JSON string: INI and registry backends would otherwise turn
numbers, booleans and lists into strings in backend-specific ways.
"""

from __future__ import annotations

import json
from typing import Optional

from PySide6.QtCore import QSettings

from engine.config import ConfigError, ExperimentConfig

CONFIG_KEY = "experiment/config"
DATA_DIR_KEY = "experiment/data_dir"
CLUSTER_KEY = "experiment/cluster"


def load_config(settings: QSettings) -> Optional[ExperimentConfig]:
    """The remembered config, or None when there is none or it no longer validates."""
    text = settings.value(CONFIG_KEY)
    if not isinstance(text, str):
        return None
    try:
        return ExperimentConfig.from_dict(json.loads(text)).validate()
    except (ValueError, TypeError, ConfigError):
        return None


def save_config(settings: QSettings, config: ExperimentConfig) -> None:
    settings.setValue(CONFIG_KEY, json.dumps(config.to_dict()))


def load_data_dir(settings: QSettings) -> Optional[str]:
    value = settings.value(DATA_DIR_KEY)
    return value if isinstance(value, str) and value else None


def save_data_dir(settings: QSettings, folder: str) -> None:
    settings.setValue(DATA_DIR_KEY, folder)


def load_cluster(settings: QSettings) -> Optional[list[str]]:
    """The remembered machine addresses (this one first), or None for this machine alone."""
    value = settings.value(CLUSTER_KEY)
    return value.split() if isinstance(value, str) and value.strip() else None


def save_cluster(settings: QSettings, addresses: Optional[list[str]]) -> None:
    settings.setValue(CLUSTER_KEY, " ".join(addresses or []))

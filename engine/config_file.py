"""Experiment settings as a TOML file: ``run --config FILE.toml``, the window's Load/Save settings, and the
``config.toml`` each experiment folder keeps so that ``run --config`` repeats it exactly.

Keys are the config's field names. A setting that is None (auto, unset) is left out of the file, and a
missing key means the default, which for those settings is None: writing then reading gives the same config.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from engine.atomic import write_bytes
from engine.config import SETTINGS, ConfigError, ExperimentConfig, parse_value, value_problem

HEADER = "# BatchLab experiment settings: python main.py run --config {name}\n"


def read_settings(path: Path | str) -> dict[str, Any]:
    """The settings a file gives, each checked alone; ConfigError names the file and the key.

    Settings that only go wrong together (a time budget without seconds) are for
    ``ExperimentConfig.validate`` once every source of settings is merged.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such settings file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values = {}
    for key, value in data.items():
        if key not in SETTINGS:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(SETTINGS)})")
        values[key] = _checked(path, key, value)
    return values


def read_config(path: Path | str) -> ExperimentConfig:
    """The config a file describes, missing settings at their defaults (no data folder or batch sizes: empty)."""
    return ExperimentConfig.from_dict({"data_dir": "", "batch_sizes": [], **read_settings(path)})


def write_config(config: ExperimentConfig, path: Path | str) -> None:
    """Write every setting that is not None, in field order, atomically."""
    path = Path(path)
    lines = [HEADER.format(name=path.name)]
    for key, value in config.to_dict().items():
        if value is not None:
            lines.append(f"{key} = {_toml(value)}\n")
    write_bytes(path, "".join(lines).encode("utf-8"))


def _checked(path: Path, key: str, value: Any) -> Any:
    spec = SETTINGS[key]
    try:
        if isinstance(value, str) and (spec.kind == "list" or spec.none_word or spec.kind in ("int", "float")):
            return parse_value(key, value)  # "32, 256", "auto": what the command line takes
        if spec.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if spec.kind == "list" and isinstance(value, list) and spec.item == "float":
            value = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        problem = value_problem(key, value)
    except ConfigError as exc:
        problem = exc.problem.text if exc.problem else str(exc)
    if problem is not None:
        raise ConfigError(f"{path}: {key}: {problem}")
    return value


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return "[" + ", ".join(_toml(v) for v in value) + "]"

"""How numbers read in BatchLab's sentences, shared so the advice, the verdict, the terminal and the
report print the same figure the same way."""

from __future__ import annotations

import math
from typing import Any, Optional


def pct(x: Optional[float]) -> str:
    """0.874 -> '87.4%'; '-' when there is no value."""
    return "-" if not finite(x) else f"{100 * x:.1f}%"


def error_pct(x: float) -> str:
    """A relative error in whole percent, with one decimal below 1% so a near-perfect fit does not read as
    a perfect one: 0.023 -> '2%', 0.0025 -> '0.2%', 1e-16 -> '0%'."""
    percent = 100 * x
    if percent >= 1:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%" if percent >= 0.05 else "0%"


def duration(seconds: float) -> str:
    """Seconds (3 significant figures), minutes or hours, whichever reads best."""
    if seconds < 90:
        return f"{seconds:.3g} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def two_figures(x: float) -> str:
    """Two significant figures: fitted estimates are not more precise than that."""
    return f"{float(f'{x:.2g}'):,.0f}" if x >= 10 else f"{x:.2g}"


def lr(x: float) -> str:
    """A learning rate as typed on the command line: 0.001, 0.0003, 3e-05."""
    return f"{x:.3g}"


def sizes(values: list[int]) -> str:
    """'32', '32 and 64', '32, 64 and 128'."""
    text = [str(v) for v in values]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


def either(options: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]


def finite(value: Any) -> bool:
    """A real number (not a bool, not NaN or infinite): what a record's measurement must be to count."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

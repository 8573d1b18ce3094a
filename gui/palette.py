"""One colour per batch size, shared by every plot and the results table.

Okabe-Ito colours (safe for the common colour-vision deficiencies), ordered so the first
few stay far apart on a white background; yellow is left out because it vanishes on white.
"""

from __future__ import annotations

from PySide6.QtGui import QColor

OKABE_ITO = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#999999",  # grey
)


def batch_colours(batch_sizes: list[int]) -> dict[int, QColor]:
    """Colour by position in the experiment's own list, so the same experiment always looks the same."""
    colours: dict[int, QColor] = {}
    for size in batch_sizes:
        if size not in colours:
            colours[size] = QColor(OKABE_ITO[len(colours) % len(OKABE_ITO)])
    return colours

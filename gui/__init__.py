"""BatchLab's desktop window (PySide6 + pyqtgraph); all training goes through ``engine``."""

from gui.qt_compat import pin_singletons

pin_singletons()

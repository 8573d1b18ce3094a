"""BatchLab's training engine: Qt-free, usable headless and from the window.

Everything here talks to the outside world through plain data: the config
dataclass in, event dataclasses out (see ``engine.events``), and the
``experiment.json`` record on disk (see ``engine.record.store``).
"""

__version__ = "0.1.0"

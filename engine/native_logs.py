"""Keep TensorFlow's native start-up logging off the terminal unless the user asks for it.

TensorFlow's C++ side writes to file descriptor 2 before its own log settings apply
(``WARNING: All log messages before absl::InitializeLog() ...``, ``cudart_stub.cc] Could
not find cuda drivers``) and logs a CPU machine's failed ``cuInit`` as an error; LiteRT
prints ``INFO: Created TensorFlow Lite XNNPACK delegate``. ``TF_CPP_MIN_LOG_LEVEL`` hides
only part of it. So, unless verbose:

* the environment gets the quiet settings before TensorFlow loads (child processes
  inherit them, and ``BATCHLAB_VERBOSE`` tells them which mode they are in);
* the first ``import tensorflow`` and its device discovery run with descriptor 2 sent
  through a filter that drops only the known noise lines and passes every other byte on.

The filter is a separate small process (this file run as a script), not a thread: if
TensorFlow aborts mid-import, the process still drains the pipe, so a fatal ``Check
failed`` line is never lost with the noise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
from typing import Any, BinaryIO, Iterator

VERBOSE_VARIABLE = "BATCHLAB_VERBOSE"
"""``1`` in the environment: show TensorFlow's own logging (``--verbose``); inherited by child processes."""

QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2"}
"""Set before TensorFlow loads unless the user set them: TensorFlow's INFO and WARNING lines off."""

FILTER_WAIT_S = 5.0

_ABSL_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ (?P<source>[\w.+-]+):\d+\] (?P<message>.*)$")
_NOISE_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
)
_NOISE_MESSAGES = (  # (source file, start of the message) of absl-formatted lines
    ("cudart_stub.cc", "Could not find cuda drivers on your machine"),
    ("cpu_feature_guard.cc", "This TensorFlow binary is optimized to use available CPU instructions"),
    ("port.cc", "oneDNN custom operations are on"),
)
_CONTINUATION = "To enable the following instructions:"  # second line of cpu_feature_guard's message
_NO_DEVICE = "CUDA_ERROR_NO_DEVICE"


class NoiseFilter:
    """Decides line by line what reaches the terminal; everything not known to be noise is kept.

    A failed ``cuInit`` is noise only where no GPU can be used anyway: no CUDA driver was
    found (reported just before), or no device is visible. On a machine with a driver it
    is the one line that says why the GPU is not used, so it is kept there.
    """

    def __init__(self) -> None:
        self.no_driver = False
        self.dropped_previous = False

    def keep(self, line: str) -> bool:
        text = line.rstrip("\r\n")
        continuation = self.dropped_previous and text.startswith(_CONTINUATION)
        self.dropped_previous = continuation or self._is_noise(text)
        return not self.dropped_previous

    def _is_noise(self, text: str) -> bool:
        if text in _NOISE_LINES:
            return True
        match = _ABSL_LINE.match(text)
        if match is None:
            return False
        source, message = match["source"], match["message"]
        if source == "cudart_stub.cc" and message.startswith("Could not find cuda drivers"):
            self.no_driver = True
        if "failed call to cuInit" in message:
            return self.no_driver or _NO_DEVICE in message
        return any(source == s and message.startswith(m) for s, m in _NOISE_MESSAGES)


def filter_stream(source: BinaryIO, target: BinaryIO) -> None:
    """Copy ``source`` to ``target`` line by line, without the noise, flushing each line at once."""
    noise = NoiseFilter()
    for line in source:
        if noise.keep(line.decode("utf-8", "surrogateescape")):
            target.write(line)
            target.flush()


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_VARIABLE) == "1"


def setup(verbose: bool = False) -> None:
    """Quiet (the default) or verbose for this process and every process it starts.

    Call before TensorFlow is imported: the CLI does for each command, the launcher for
    the window, a parallel-run child first thing. ``verbose`` or ``BATCHLAB_VERBOSE=1``
    in the environment shows everything. Costs nothing when TensorFlow is never imported.
    """
    if verbose or is_verbose():
        os.environ[VERBOSE_VARIABLE] = "1"
        return
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Send file descriptor 2 (C++ and Python alike) through the noise filter while the block runs.

    Meant for short stretches where native code logs (an import, a first allocation); does
    nothing when verbose, off POSIX, or if the filter cannot start (then nothing is hidden).
    """
    if is_verbose() or os.name != "posix":
        yield
        return
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to filter
        yield
        return
    try:
        process = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__)],
                                   stdin=subprocess.PIPE, stdout=saved, stderr=saved)
    except OSError:
        os.close(saved)
        yield
        return
    os.dup2(process.stdin.fileno(), 2)
    try:
        yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)
        process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):  # a grandchild may hold the pipe: do not hang
            process.wait(FILTER_WAIT_S)


def _flush_stderr() -> None:
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()


class _QuietTensorFlowImport:
    """Finds ``tensorflow`` once, with a loader that imports it and discovers its devices under the filter."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader)
        return spec


class _FilteredLoader:
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # TensorFlow sees its own loader
        with filtered_stderr():
            self.loader.exec_module(module)
            # Device discovery is where CUDA is initialised (and a CPU machine's cuInit fails).
            # Should it raise, the caller's own discovery raises the same error, visibly.
            with contextlib.suppress(Exception):
                module.config.list_physical_devices()


def _filter_main() -> int:
    """The filter process: stdin is the pipe behind descriptor 2, stdout the real stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is for the program; keep draining its output
    filter_stream(sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(_filter_main())

"""First launch: draw the bundled demo data set in a thread and select it (the image size setting's
"auto" then resolves to the size the demo recommends)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.data.demo import demo_data_exists, generate_demo_data
from engine.stop import StopToken
from gui.engine_worker import TaskWorker

DRAWING = "Drawing the demo data set…"


class DemoDataMixin:
    """MainWindow's demo data: ``use_demo_data`` points the data panel at it, drawing it first if needed."""

    def use_demo_data(self) -> None:
        """Point the data panel at the bundled demo set, drawing it first (in a thread) if needed."""
        if demo_data_exists(self.data_root):
            self.data_panel.set_folder(str((self.data_root / "shapes").resolve()))
            return
        if self.demo_worker is not None:
            return
        root, per_class = self.data_root, self._demo_per_class

        def draw(progress: Callable[[int, int], None], stop: StopToken) -> Path:
            def report(done: int, total: int) -> None:
                stop.raise_if_set()  # closing the window abandons the set; atomic_dir leaves nothing behind
                progress(done, total)
            return generate_demo_data(root, per_class=per_class, progress=report)

        worker = TaskWorker(draw)
        # Bound methods of this window, never lambdas: Qt then queues the calls to the GUI thread.
        worker.progress.connect(self._on_demo_progress)
        worker.succeeded.connect(self._on_demo_ready)
        worker.failed.connect(self._on_demo_failed)
        worker.finished.connect(self._on_demo_finished)
        self.demo_worker = worker
        self.data_panel.show_busy(DRAWING, 0, 0)
        self.log.add("info", f"First launch: drawing the demo data set in {self.data_root.resolve()}")
        worker.start()

    def _abandon_demo(self, _folder: str) -> None:
        """The user chose a folder while the demo set was being drawn: their choice wins."""
        if self.demo_worker is not None:
            self.demo_worker.request_stop()

    def _demo_abandoned(self) -> bool:
        return self.demo_worker is None or self.demo_worker.stop_token.is_set()

    def _on_demo_progress(self, done: int, total: int) -> None:
        if not self._demo_abandoned():
            self.data_panel.show_busy(DRAWING, done, total)

    def _on_demo_ready(self, folder: Path) -> None:
        if not self._demo_abandoned():
            self.data_panel.end_busy()
            self.data_panel.set_folder(str(Path(folder).resolve()))

    def _on_demo_failed(self, message: str) -> None:
        self.data_panel.end_busy()
        self.show_notice("error", f"The demo data set could not be made: {message}")

    def _on_demo_finished(self) -> None:
        if self.demo_worker is not None:
            self.demo_worker.wait()
            self.demo_worker = None
        self._update_actions()

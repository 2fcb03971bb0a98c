"""Graceful stops: SIGINT / SIGTERM end training after the current step (no torch needed here,
so the CLI can catch `Stopped` without loading a model)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path


class Stopped(Exception):
    """A run stopped by SIGINT / SIGTERM after saving its state; `resume(path)` continues it exactly."""

    def __init__(self, path: Path, step: int, signum: int):
        self.path, self.step, self.signum = Path(path), step, signum
        super().__init__(
            f"run {self.path} stopped at step {step} by {signal.Signals(signum).name}; "
            f"resume it with: workbench train --resume {self.path}"
        )


@contextlib.contextmanager
def stop_on_signals(state) -> Iterator[dict]:
    """SIGINT / SIGTERM set `state.stop` (the loop ends after the current step); a second SIGINT
    interrupts at once. Only in the main thread (elsewhere signals cannot be handled)."""
    received: dict = {}
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if state.stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        state.stop = True
        received.setdefault("signum", signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

"""Callbacks the tests interrupt training with: a kill (KeyboardInterrupt at a step, as a crash would end the loop)
and a graceful stop (as Ctrl-C or SIGTERM asks for)."""

from __future__ import annotations

from workbench.training.loop import Callback


class KillAt(Callback):
    """Raise KeyboardInterrupt after `step`: the run is left as a kill leaves it."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state) -> None:
        if state.step == self.step:
            raise KeyboardInterrupt("simulated kill")


class StopAt(Callback):
    """Ask the loop to stop after `step`, as a signal does: the state is saved as the run's resume point."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state) -> None:
        state.stop = state.stop or state.step >= self.step

"""`OverwriteTracker`: follow the MLP key-value overwrite while a fine-tuning run trains.

A `Callback` that snapshots the model when training starts (the base checkpoint, for a fresh
fine-tuning run) and, every `every` steps and at the end, measures `keyvalue.overwrite` of a fixed
set of pre-training individuals against that snapshot, per layer. Rows accumulate in `.rows`
(`.frame()` gives the DataFrame); with `path`, they are also written as CSV (atomically) each time.

    tracker = OverwriteTracker(every=50)
    train(config, out, callbacks=[tracker]); tracker.frame()
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pandas as pd

from workbench.atomic import atomic_write_csv
from workbench.probes.keyvalue import OVERWRITE_COLUMNS, overwrite
from workbench.probes.sites import check_layers, sample_individuals
from workbench.training.loop import Callback, TrainState


class OverwriteTracker(Callback):
    """Overwrite of pre-training individuals' key-value memories, per layer, during training."""

    def __init__(
        self,
        every: int = 50,
        n: int = 64,
        layers: list[int] | None = None,
        k: int = 10,
        decode: str = "topk",
        seed: int = 0,
        path: str | os.PathLike | None = None,
    ):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is out of range: allowed an integer >= 1")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} is out of range: allowed an integer >= 1")
        if decode not in ("topk", "mlp"):
            raise ValueError(f"decode={decode!r} is out of range: allowed topk | mlp")
        self.every, self.n, self.layers, self.k, self.decode, self.seed = every, n, layers, k, decode, seed
        self.path = Path(path) if path is not None else None
        self.rows: list[dict] = []

    def on_train_start(self, state: TrainState) -> None:
        self.layers = check_layers(self.layers, state.model.cfg.n_layers)
        n = min(self.n, len(state.data.population.seen))
        self.individuals = sample_individuals(state.data, "seen", n, self.seed)
        self.base = copy.deepcopy(state.model).eval()
        self.measure(state)

    def on_step_end(self, state: TrainState) -> None:
        if state.step % self.every == 0 or state.step == state.config.train.steps:
            self.measure(state)

    def measure(self, state: TrainState) -> None:
        model = state.model
        was_training = model.training
        model.eval()
        try:
            for layer in self.layers:
                self.rows.append(
                    {
                        "step": state.step,
                        **overwrite(
                            self.base, model, state.data, self.individuals, layer, self.k, self.decode, self.seed
                        ),
                    }
                )
        finally:
            model.train(was_training)
        if self.path is not None:
            atomic_write_csv(self.path, self.frame())

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["step", *OVERWRITE_COLUMNS])

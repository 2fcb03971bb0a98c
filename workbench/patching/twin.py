"""The twin model: training with attention patching (docs/method.md §4.3), a callback plus the validation
of its spec.

From `patch.start_step` on, every forward pass of the trained model uses the patterns that a frozen
reference checkpoint computes on the same input; the optimizer state is reset when patching starts.
The patched run is an ordinary run (metrics, checkpoints, resume); its config records the spec.
"""

from __future__ import annotations

from functools import lru_cache

from workbench.config import DataConfig, RunConfig, check_indices
from workbench.patching.hooks import PatternPatcher
from workbench.patching.sources import ReferencePatterns
from workbench.training.loop import Callback, TrainState
from workbench.training.rundir import RunDir


class PatchCallback(Callback):
    """Installs a `PatternPatcher` at the start step, resetting the optimizer state there."""

    def __init__(self, patcher: PatternPatcher, start_step: int):
        self.patcher, self.start_step, self.installed = patcher, start_step, False

    def _maybe_install(self, state: TrainState) -> None:
        if not self.installed and state.step >= self.start_step:
            if state.step == self.start_step:
                state.optimizer.state.clear()  # "the optimizer state is reset when patching starts"
            self.patcher.install()
            self.installed = True

    def on_train_start(self, state: TrainState) -> None:
        self._maybe_install(state)

    def on_step_start(self, state: TrainState) -> None:
        self._maybe_install(state)

    def on_train_end(self, state: TrainState) -> None:
        if self.installed:
            self.patcher.remove()
            self.installed = False


@lru_cache(maxsize=8)
def _config_tokenizer(data: DataConfig):
    """The tokenizer a data config defines (deterministic BPE on its pools and templates)."""
    from workbench.data.pools import Pools
    from workbench.data.tokenizer import train_tokenizer

    return train_tokenizer(Pools.from_sizes(data.pool_sizes), data.attributes, data.n_templates, data.vocab_size)


def validate_patch(config: RunConfig, tokenizer=None):
    """Check a patch spec against its reference run without loading any weights; returns the `Run`.

    The reference must be a run directory with a checkpoint at `reference_step`, the same model
    architecture, the tokenizer this run's data config defines (and `tokenizer`, when given), and
    the same seed (the study's twin model: same initial weights and batches) unless
    `patch.allow_other_seed`; start step, layers and heads must lie in range. Any violation ->
    ValueError naming the field.
    """
    from workbench.run import load_run

    spec = config.patch
    if spec is None:
        raise ValueError("config.patch is None: nothing to validate")
    RunDir.require(spec.reference_run, "patch.reference_run")
    if spec.start_step > config.train.steps:
        raise ValueError(f"patch.start_step={spec.start_step} is out of range: allowed [0, {config.train.steps}]")
    check_indices("patch.layers", spec.layers, n=config.model.n_layers)
    check_indices("patch.heads", spec.heads, n=config.model.n_heads)
    ref = load_run(spec.reference_run)
    if spec.reference_step not in ref.checkpoint_steps:
        raise ValueError(
            f"patch.reference_step={spec.reference_step} has no checkpoint in {spec.reference_run}: "
            f"allowed {ref.checkpoint_steps}"
        )
    if ref.config.model != config.model:
        raise ValueError(
            f"patch.reference_run={spec.reference_run!r} has another architecture "
            f"({ref.config.model}) than this run ({config.model})"
        )
    if ref.config.seed != config.seed and not spec.allow_other_seed:
        raise ValueError(
            f"seed={config.seed} differs from patch.reference_run={spec.reference_run!r} (seed "
            f"{ref.config.seed}): the twin model shares the reference's seed; allowed {ref.config.seed}, "
            "or set patch.allow_other_seed=true to use another seed on purpose"
        )
    ref_tokenizer = ref.tokenizer
    if ref_tokenizer != _config_tokenizer(config.data) or (tokenizer is not None and ref_tokenizer != tokenizer):
        raise ValueError(
            f"patch.reference_run={spec.reference_run!r} uses another tokenizer than this run "
            f"(the one its data config defines): the reference would see other token ids"
        )
    return ref


def reference_model(config: RunConfig, tokenizer, device: str = "cpu"):
    """Validate a patch spec against its reference run and load the frozen reference model."""
    ref = validate_patch(config, tokenizer)
    return ref.load_model(config.patch.reference_step, device)


def reference_tokenizer(config: RunConfig):
    """The reference run's saved tokenizer (validated against this run's in `validate_patch`)."""
    return RunDir.require(config.patch.reference_run, "patch.reference_run").tokenizer()


def prepare_patching(config: RunConfig, data, model, device: str, fresh: bool) -> list[Callback]:
    """Validate the patch spec and load the frozen reference model: the patching callback."""
    spec = config.patch
    source = ReferencePatterns(reference_model(config, data.tokenizer, device))
    patcher = PatternPatcher(model, source, list(spec.layers) or None, list(spec.heads) or None, spec.mix)
    return [PatchCallback(patcher, spec.start_step)]

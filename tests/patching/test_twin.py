"""The twin model (training with attention patching) end to end, and patch specs rejected before any training."""

import json

import pytest
import torch

from workbench.config import PatchConfig, RunConfig, preset
from workbench.experiment import train
from workbench.metrics import evaluate, summarize
from workbench.patching.hooks import patch_patterns
from workbench.patching.sources import ReferencePatterns
from workbench.training.loop import Callback

SHORT = {"steps": 6, "checkpoint_steps": (0, 6), "eval_every": 3}


def _patched(reference, step=40, start=0, train_cfg=SHORT, **spec):
    return preset("tiny", train=train_cfg).replace(
        patch=PatchConfig(reference_run=str(reference), reference_step=step, start_step=start, **spec)
    )


def test_patched_run_records_its_spec_and_starts_from_the_patched_untrained_model(tiny_run, tiny_run_dir, tmp_path):
    cfg = _patched(tiny_run_dir)
    run = train(cfg, tmp_path / "patched", progress=False)
    assert run.status == "finished"
    saved = RunConfig.from_dict(json.loads((run.path / "config.json").read_text()))
    assert saved.patch == cfg.patch and saved == cfg

    untrained = tiny_run.load_model(0)  # same seed and architecture: the patched run's initial weights
    assert torch.equal(untrained.W_Q, run.load_model(0).W_Q)
    data, attrs = run.data, cfg.data.attributes
    with patch_patterns(untrained, ReferencePatterns(tiny_run.load_model(40))):
        seen = summarize(evaluate(untrained, data.eval_batch("seen"), attrs), attrs)
        held = summarize(evaluate(untrained, data.eval_batch("heldout"), attrs), attrs, "heldout_")
    row = run.metrics.iloc[0]
    assert row["step"] == 0
    for key, value in {**seen, **held}.items():
        assert row[key] == value, key
    assert row["attribute_loss"] != pytest.approx(tiny_run.metrics.iloc[0]["attribute_loss"], rel=1e-4)


class _Recorder(Callback):
    """Records, at each step start, whether patterns are hooked and the optimizer state size."""

    def __init__(self):
        self.at_start, self.before_reset, self.hooked_at_end = {}, None, None

    def on_step_start(self, state):
        hooked = bool(state.model.blocks[0].attn.hook_pattern.fwd_hooks)
        self.at_start[state.step] = (hooked, len(state.optimizer.state))

    def on_step_end(self, state):
        if state.step == 3:
            self.before_reset = len(state.optimizer.state)

    def on_train_end(self, state):  # runs after the patching callback's own on_train_end
        self.hooked_at_end = bool(state.model.blocks[0].attn.hook_pattern.fwd_hooks)


def test_start_step_resets_the_optimizer_and_does_not_patch_before(tiny_run, tiny_run_dir, tmp_path):
    recorder = _Recorder()
    run = train(_patched(tiny_run_dir, start=3), tmp_path / "late", progress=False, callbacks=[recorder])
    assert [recorder.at_start[s][0] for s in range(6)] == [False] * 3 + [True] * 3
    assert recorder.before_reset > 0  # there was optimizer state to reset ...
    assert recorder.at_start[3][1] == 0  # ... and it is empty right after patching is installed
    assert recorder.at_start[4][1] > 0
    assert recorder.hooked_at_end is False  # removed when training ends
    # step 0 is evaluated unpatched: identical to the unpatched tiny run's untrained model
    assert run.metrics.iloc[0]["attribute_loss"] == tiny_run.metrics.iloc[0]["attribute_loss"]


@pytest.mark.parametrize(
    "case, match",
    [
        ("unknown_run", "not a run directory"),
        ("no_checkpoint", "reference_step=7 has no checkpoint"),
        ("layer", "patch.layers"),
        ("head", "patch.heads"),
        ("start", "patch.start_step"),
        ("architecture", "another architecture"),
        ("tokenizer", "another tokenizer"),
    ],
)
def test_bad_specs_fail_before_training(
    case, match, tiny_run_dir, other_arch_run_dir, other_tokenizer_run_dir, tmp_path
):
    cfg = {
        "unknown_run": lambda: _patched(tmp_path / "nowhere"),
        "no_checkpoint": lambda: _patched(tiny_run_dir, step=7),
        "layer": lambda: _patched(tiny_run_dir, layers=(0, 2)),
        "head": lambda: _patched(tiny_run_dir, heads=(2,)),
        "start": lambda: _patched(tiny_run_dir, start=7),
        "architecture": lambda: _patched(other_arch_run_dir, step=5),
        "tokenizer": lambda: _patched(other_tokenizer_run_dir),
    }[case]()
    out = tmp_path / "bad"
    with pytest.raises(ValueError, match=match):
        train(cfg, out, progress=False)
    assert not out.exists()

"""workbench.viz.explorers: widgets recompute on change, through the same public functions as the scripts."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest

from workbench.attention import attention_metrics
from workbench.patching import ablate, activation_patching, make_pair
from workbench.viz.explorers import AblationExplorer, AttentionExplorer, GridComparer


def _png(explorer) -> bytes:
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live widget
    return base64.b64decode(bundle["image/png"])  # and its static fallback


def test_ablation_explorer_recomputes_on_change(tiny_run):
    e = AblationExplorer(tiny_run, individual=0, attribute="birth_city")
    first, first_png = e.result.copy(), _png(e)
    pair = make_pair(tiny_run.data, 0, "birth_city")
    direct = activation_patching(
        tiny_run.load_model(), pair.clean, pair.corrupted, pair.target, "resid_pre", labels=pair.labels, progress=False
    )
    pd.testing.assert_frame_equal(first, direct)  # no second code path
    e.set(individual=3)
    assert e.result.attrs["individual"] == 3 and not e.result.equals(first) and _png(e) != first_png
    assert "(3)</b>" in e.status.value
    e.set(component="z")
    assert list(e.result.columns) == ["layer", "head", "score", "normalized"]
    e.set(component="zero ablation", step=tiny_run.checkpoint_steps[0])
    pair3 = make_pair(tiny_run.data, 3, "birth_city")
    direct = ablate(
        tiny_run.load_model(tiny_run.checkpoint_steps[0]),
        pair3.clean,
        pair3.target,
        kind="zero",
        units="heads",
        progress=False,
    )
    assert e.result["delta"].to_numpy() == pytest.approx(direct["delta"].to_numpy())


def test_ablation_explorer_corruption_lists_names_of_the_same_length(tiny_run):
    e = AblationExplorer(tiny_run, individual=2)
    bio = tiny_run.data.biographer
    n = len(bio.name_tokens(2))
    others = [v for _, v in e.corruption.options if v >= 0]
    assert others and all(len(bio.name_tokens(i)) == n and i != 2 for i in others)
    e.set(corruption=others[0])
    assert e.result.attrs["corrupt_with"] == others[0]


def test_attention_explorer_follows_the_step_slider(tiny_run):
    e = AttentionExplorer(tiny_run, size=16)
    last = e.metrics.copy()
    first = tiny_run.checkpoint_steps[0]
    e.set(step=first, head=1)
    expected = attention_metrics(tiny_run.load_model(first), e.batch)
    expected = expected[(expected["layer"] == e.layer.value) & (expected["head"] == 1)]
    assert e.metrics["value"].to_numpy() == pytest.approx(expected["value"].to_numpy(), nan_ok=True)
    assert not e.metrics["value"].equals(last["value"])
    # the biography's text, name and value tokens highlighted
    assert e.text.value.count("background:#cfe3ff") >= len(tiny_run.config.data.attributes)
    assert _png(e)


def test_attention_explorer_draws_the_pattern_of_row_pattern(tiny_run, monkeypatch):
    """One function extracts a biography's pattern (viz.attention_views.row_pattern); the explorer draws it."""
    from workbench.viz import attention_views

    calls, real = [], attention_views.row_pattern
    monkeypatch.setattr(attention_views, "row_pattern", lambda *args: calls.append(args[2:]) or real(*args))
    e = AttentionExplorer(tiny_run, size=16)
    e.set(head=1)
    assert calls[-1] == (e.row, e.layer.value)
    pattern, _, _ = real(tiny_run.load_model(e.step.value), e.batch, e.row, e.layer.value)
    assert np.allclose(np.asarray(e.figure.axes[0].images[0].get_array()), pattern[1].double().numpy())


def test_grid_comparer_shows_the_chosen_reference_steps(tiny_run):
    grid = pd.DataFrame(
        {
            "reference_step": pd.array([None, 10, 20], dtype="Int64"),
            "start_step": pd.array([None, 0, 0], dtype="Int64"),
            "run": [str(tiny_run.path)] * 3,
            "final_attribute_loss": [1.0, 1.0, 1.0],
            "final_attribute_accuracy": [0.0, 0.0, 0.0],
            "steps_to_50pct_accuracy": [float("nan")] * 3,
        }
    )
    g = GridComparer(grid)

    def labels() -> list[str]:
        return [line.get_label() for line in g.figure.axes[0].get_lines()]

    assert any("ref step 10" in x for x in labels()) and any("ref step 20" in x for x in labels())
    g.set([20])
    assert not any("ref step 10" in x for x in labels()) and any("ref step 20" in x for x in labels())
    assert any("reference (unpatched)" in x for x in labels())

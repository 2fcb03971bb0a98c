"""The recall-head finder: attention scores, ablation effects with a known answer, and the choice."""

import copy

import pytest
import torch

from workbench.attention import attention_metrics
from workbench.attribution.heads import check_head, find_recall_head, head_scores
from workbench.config import preset
from workbench.data.biography_data import BiographyData
from workbench.metrics import evaluate
from workbench.model import build_model


@pytest.fixture(scope="module")
def silenced():
    """A tiny model whose head L1H1 writes nothing (W_O = 0): ablating it can change nothing."""
    cfg = preset("tiny")
    data = BiographyData(cfg)
    model = build_model(cfg.model, data.tokenizer.vocab_size, data.max_length, seed=7)
    with torch.no_grad():
        model.blocks[1].attn.W_O[1] = 0.0
    return model, data.eval_batch("seen", 32), len(cfg.data.attributes)


@pytest.mark.parametrize("ablation", ["mean", "zero"])
def test_a_silent_head_has_no_ablation_effect(silenced, ablation):
    model, batch, n_attributes = silenced
    scores = head_scores(model, batch, n_attributes, ablation).set_index(["layer", "head"])
    assert abs(scores.loc[(1, 1), "ablation_effect"]) < 1e-5
    assert abs(scores.loc[(1, 0), "ablation_effect"]) > 1e-4


def test_zero_ablation_is_the_loss_change_of_removing_the_heads_output(silenced):
    model, batch, n_attributes = silenced
    effect = head_scores(model, batch, n_attributes, "zero").set_index(["layer", "head"]).loc[(1, 0), "ablation_effect"]
    without = copy.deepcopy(model)
    with torch.no_grad():
        without.blocks[1].attn.W_O[0] = 0.0
    want = evaluate(without, batch, n_attributes).loss.mean() - evaluate(model, batch, n_attributes).loss.mean()
    assert effect == pytest.approx(want.item(), abs=1e-5)


def test_a_head_whose_ablation_hurts_ranks_first(dense_run):
    scores = find_recall_head(dense_run, size=32).scores
    if (scores["ablation_effect"] > 0).any():
        assert scores.iloc[0]["ablation_effect"] > 0
    hurting = scores[scores["ablation_effect"] > 0]
    assert list(hurting["rank"]) == sorted(hurting["rank"]) and hurting["attribute_to_name"].is_monotonic_decreasing


def test_attention_scores_are_the_attribute_to_own_name_metric(silenced):
    model, batch, n_attributes = silenced
    scores = head_scores(model, batch, n_attributes, layers=(0, 1)).set_index(["layer", "head"])
    metrics = attention_metrics(model, batch)
    own = metrics[metrics["metric"] == "attribute->own_name"].set_index(["layer", "head"])["value"]
    assert len(scores) == 4
    for key, value in own.items():
        assert scores.loc[key, "attribute_to_name"] == pytest.approx(value)
    assert sorted(scores["rank"]) == [1, 2, 3, 4]


def test_the_recall_head_of_a_run_is_in_its_last_layer_at_a_checkpoint(dense_run):
    found = find_recall_head(dense_run, size=32)
    assert found.layer == dense_run.config.model.n_layers - 1
    assert found.step in dense_run.checkpoint_steps
    assert (found.layer, found.head) == tuple(found.scores.iloc[0][["layer", "head"]].astype(int))


@pytest.mark.parametrize(
    "layer, head, message",
    [
        (2, 0, r"layer=2 is out of range: allowed an integer in \[0, 1\]"),
        (0, 2, r"head=2 is out of range: allowed an integer in \[0, 1\]"),
    ],
)
def test_heads_outside_the_model_are_refused(layer, head, message):
    with pytest.raises(ValueError, match=message):
        check_head(preset("tiny").model, layer, head)


def test_unknown_ablation_and_step_are_refused(silenced, dense_run):
    model, batch, n_attributes = silenced
    with pytest.raises(ValueError, match="ablation"):
        head_scores(model, batch, n_attributes, ablation="resample")
    with pytest.raises(ValueError, match="step"):
        find_recall_head(dense_run, step=7)

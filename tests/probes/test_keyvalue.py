import pytest
import torch

from workbench.config import preset
from workbench.experiment import train
from workbench.probes.keyvalue import (
    VIEW_COLUMNS,
    decoded_values,
    jaccard,
    key_value_view,
    overwrite,
    overwrite_details,
    overwrite_over_checkpoints,
    pool_first_tokens,
)
from workbench.probes.sites import biographies
from workbench.probes.tracking import OverwriteTracker

INDIVIDUALS = list(range(24))


def _activations_by_hand(model, data, individual: int, layer: int) -> torch.Tensor:
    """hook_post at the last name token of the first sentence, found by walking the labels."""
    batch = biographies(data, [individual])
    kinds = batch.kind[0].tolist()
    p = kinds.index(3)  # NAME
    while kinds[p + 1] == 3:
        p += 1
    _, cache = model.run_with_cache(batch.tokens)
    return cache[f"blocks.{layer}.mlp.hook_post"][0, p]


def test_key_value_view_lists_the_most_active_neurons(tiny_model, tiny_data):
    k, layer, individual = 5, 0, 7
    view = key_value_view(tiny_model, tiny_data, individual, layer, k=k)
    n_attr = len(tiny_data.config.data.attributes)
    assert list(view.columns) == VIEW_COLUMNS and len(view) == k * n_attr
    acts = _activations_by_hand(tiny_model, tiny_data, individual, layer)
    neurons = view.drop_duplicates("neuron")
    assert neurons["neuron"].tolist() == acts.topk(k).indices.tolist()
    torch.testing.assert_close(torch.tensor(neurons["activation"].tolist()), acts.topk(k).values)
    assert neurons["activation"].is_monotonic_decreasing


def test_key_value_view_contributions_go_through_the_unembedding(tiny_model, tiny_data):
    layer, individual = 1, 3
    view = key_value_view(tiny_model, tiny_data, individual, layer, k=2)
    row = view.iloc[1]
    attr = tiny_data.config.data.attributes.index(row["attribute"])
    token = tiny_data.biographer.value_tokens(individual, attr)[0]
    assert tiny_data.tokenizer.token_strings([token])[0] == row["value_token"]
    expected = row["activation"] * (tiny_model.W_out[layer][row["neuron"]] @ tiny_model.W_U)[token].item()
    assert row["logit_contribution"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    pool = pool_first_tokens(tiny_data)[attr]
    assert 0 <= row["pool_rank"] < len(pool) and token in pool.tolist()


def test_decoded_values_come_from_the_attribute_pools(tiny_model, tiny_data):
    for decode in ("topk", "mlp"):
        keys, decoded = decoded_values(tiny_model, tiny_data, INDIVIDUALS, 0, k=4, decode=decode)
        assert keys.shape == (len(INDIVIDUALS), 4) and decoded.shape == (len(INDIVIDUALS), 6)
        for j, pool in enumerate(pool_first_tokens(tiny_data)):
            assert set(decoded[:, j].tolist()) <= set(pool.tolist())


def test_jaccard():
    a, b = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]]), torch.tensor([[4, 3, 2, 1], [1, 2, 5, 6]])
    assert jaccard(a, b).tolist() == pytest.approx([1.0, 2 / 6])


def test_a_model_does_not_overwrite_itself(tiny_model, tiny_data):
    for layer in (0, 1):
        out = overwrite(tiny_model, tiny_model, tiny_data, INDIVIDUALS, layer)
        assert out["keys_changed"] == out["values_changed"] == out["overwritten"] == out["value_change_rate"] == 0.0
        assert out["mean_jaccard"] == 1.0 and out["n"] == len(INDIVIDUALS)


def test_training_overwrites_keys_and_values(tiny_model_init, tiny_model, tiny_data):
    out = overwrite(tiny_model_init, tiny_model, tiny_data, INDIVIDUALS, 0, decode="mlp")
    assert out["overwritten"] > 0 and out["mean_jaccard"] < 1.0
    assert 0 < out["value_change_rate"] <= out["values_changed"]
    details = overwrite_details(tiny_model_init, tiny_model, tiny_data, INDIVIDUALS, 0)
    assert details["individual"].tolist() == INDIVIDUALS
    assert (details["keys_changed"] == (details["jaccard"] < 0.5)).all()


def test_overwrite_over_checkpoints(tiny_run_copy, tiny_model_init):
    tiny_run = tiny_run_copy  # the results are cached in the run directory
    last = tiny_run.checkpoint_steps[-1]
    df = overwrite_over_checkpoints(tiny_run, base_model=tiny_model_init, n=16, steps=[0, last], progress=False)
    assert len(df) == 2 * tiny_model_init.cfg.n_layers
    assert (df[df["step"] == 0]["overwritten"] == 0).all()
    assert df[df["step"] == last]["overwritten"].max() > 0
    with pytest.raises(ValueError, match="fine-tuning"):
        overwrite_over_checkpoints(tiny_run, progress=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"k": 0}, "k="), ({"k": 10**6}, "k="), ({"layer": 5}, "layers"), ({"individual": -1}, "individuals")],
)
def test_bad_key_value_arguments_raise(tiny_model, tiny_data, kwargs, match):
    args = {"individual": 0, "layer": 0, "k": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        key_value_view(tiny_model, tiny_data, **args)


def test_tracker_follows_overwrite_during_training(tmp_path):
    tracker = OverwriteTracker(every=5, n=16, path=tmp_path / "overwrite.csv")
    train(
        preset("tiny", train={"steps": 10, "checkpoint_steps": (0, 10)}),
        tmp_path / "run",
        progress=False,
        callbacks=[tracker],
    )
    df = tracker.frame()
    assert df["step"].tolist() == [0, 0, 5, 5, 10, 10]
    assert (df[df["step"] == 0]["overwritten"] == 0).all()
    assert df[df["step"] == 10]["overwritten"].max() > 0
    assert (tmp_path / "overwrite.csv").is_file()
    with pytest.raises(ValueError, match="every"):
        OverwriteTracker(every=0)

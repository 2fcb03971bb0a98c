"""workbench.model: a loaded checkpoint carries the run's tokenizer, so TransformerLens' text methods work."""

from __future__ import annotations

import torch


def test_to_str_tokens_round_trips_a_biography(tiny_run):
    model = tiny_run.load_model()
    data = tiny_run.data
    batch = data.eval_batch("seen", 8)
    for row in range(len(batch)):
        text = data.biographer.text(batch, row)
        pieces = model.to_str_tokens(text)
        assert pieces[0] == "<|bos|>"  # strings get BOS, as every training biography has
        assert "".join(pieces[1:]) == text
        assert model.to_string(model.to_tokens(text)[0, 1:]) == text


def test_to_tokens_matches_the_spliced_biography_here(tiny_run):
    """Not guaranteed in general (BPE may merge across segments; a Batch is the exact path), but with
    whole-word names and values the two agree on the tiny preset's biographies."""
    model, data = tiny_run.load_model(), tiny_run.data
    batch = data.eval_batch("seen", 8)
    for row in range(len(batch)):
        n = int(batch.mask[row].sum())
        assert torch.equal(model.to_tokens(data.biographer.text(batch, row))[0], batch.tokens[row, :n])


def test_generate_continues_a_prompt(tiny_run):
    model = tiny_run.load_model()
    prompt = tiny_run.data.biographer.text(tiny_run.data.eval_batch("seen", 1), 0)[:40]
    out = model.generate(prompt, max_new_tokens=4, verbose=False, do_sample=False)
    assert isinstance(out, str) and out.startswith(prompt) and len(out) > len(prompt)

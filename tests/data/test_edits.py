"""Sequence edits: removed / duplicated (step, row) sequences, batches still a pure function of (seed, step)."""

import numpy as np
import pytest
import torch

from workbench.config import preset
from workbench.data.biography_data import BiographyData
from workbench.data.edits import SequenceEdit

B = 16  # the tiny preset's batch size


def _data(edit=None) -> BiographyData:
    data = BiographyData(preset("tiny"))
    data.set_edit(edit)
    return data


def _rows(batch) -> list[tuple]:
    """Each row as (individual, its real tokens), padding stripped."""
    return [(int(batch.individuals[i]), tuple(batch.tokens[i][batch.mask[i]].tolist())) for i in range(len(batch))]


def test_removes_and_duplicates_exactly_the_requested_sequences():
    edit = SequenceEdit(B, remove=[(3, 0), (3, 7), (5, 15)], duplicate=[(3, 2), (9, 4)])
    plain, edited = _data(), _data(edit)
    for step in range(12):
        want = _rows(plain.train_batch(step))
        if step == 3:
            want = [r for i, r in enumerate(want) if i not in (0, 7)]
            want.insert(2, want[1])  # row 2 is now at index 1; its duplicate follows it
        elif step == 5:
            want = want[:15]
        elif step == 9:
            want.insert(5, want[4])
        assert _rows(edited.train_batch(step)) == want, step
    assert edit.steps == [3, 5, 9] and len(edit) == 5


def test_edited_batches_are_a_pure_function_of_seed_and_step():
    edit = SequenceEdit(B, remove=[(2, 1), (6, 3)], duplicate=[(4, 0)])
    forward = {s: _data(edit).train_batch(s) for s in range(8)}
    other = _data(edit)
    for s in reversed(range(8)):  # another instance, steps in another order, each asked twice
        for _ in range(2):
            b = other.train_batch(s)
            assert torch.equal(b.tokens, forward[s].tokens) and torch.equal(b.individuals, forward[s].individuals)


def test_set_edit_none_restores_the_original_batches():
    data = _data(SequenceEdit(B, remove=[(1, 0)]))
    assert len(data.train_batch(1)) == B - 1
    data.set_edit(None)
    assert torch.equal(data.train_batch(1).tokens, _data().train_batch(1).tokens)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"remove": [(0, B)]}, "edit.remove: a row is out of range: allowed rows in [0, 15]"),
        ({"duplicate": [(0, -1)]}, "edit.duplicate: a row is out of range"),
        ({"remove": [(-1, 0)]}, "edit.remove: a step is negative"),
        ({"remove": [(1, 2), (1, 2)]}, "edit.remove: a (step, row) pair repeats"),
        ({"remove": [(1, 2)], "duplicate": [(1, 2)]}, "both removed and duplicated"),
        ({"remove": [(4, r) for r in range(B)]}, "edit.remove empties the batch of step 4: allowed at most 15"),
    ],
)
def test_bad_edits_raise_naming_the_field(kw, message):
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        SequenceEdit(B, **kw)


def test_an_edit_for_another_batch_size_is_refused():
    with pytest.raises(ValueError, match=r"edit.batch_size=8 is out of range: allowed 16 \(train.batch_size\)"):
        _data().set_edit(SequenceEdit(8, remove=[(0, 0)]))


def test_train_templates_are_the_templates_of_the_training_batch():
    """Each sentence's template, as reported, is the one the biography was written with."""
    from workbench.data.templates import TEMPLATES

    data = _data()
    batch, templates = data.train_batch(2), data.train_templates(2)
    attrs = data.config.data.attributes
    assert templates.shape == (B, len(attrs))
    for i in range(3):
        text = data.biographer.text(batch, i)
        for j, a in enumerate(attrs):  # the words between the name and the value, e.g. " was born on "
            between = TEMPLATES[a][templates[i, j]].split("{name}")[1].split("{value}")[0]
            assert between in text, (a, between, text)
    assert np.array_equal(templates, data.train_templates(2))

"""Reading tests: the conditions build the contexts they name, a planted reader passes them, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.retrieval.reading import CONDITIONS, _other_rows, reading_test


def test_reading_table_has_every_condition_at_every_step(packed_run):
    table = reading_test(packed_run, steps=(packed_run.checkpoint_steps[-1],), size=16, n_boot=20, progress=False)
    assert list(table["condition"]) == list(CONDITIONS)  # k=3: room for two documents
    assert (table["n"] == 16).all() and table["accuracy"].between(0, 1).all()
    assert (table["accuracy_lo"] <= table["accuracy"]).all() and (table["accuracy"] <= table["accuracy_hi"]).all()


def test_alone_is_the_runs_own_heldout_evaluation(packed_run):
    """No document: the same scores as the held-out metrics' code on the same biographies (an independent path)."""
    from workbench.metrics import evaluate

    step = packed_run.checkpoint_steps[-1]
    table = reading_test(packed_run, steps=(step,), size=16, conditions=("alone",), n_boot=0, progress=False)
    batch = packed_run.data.eval_batch("heldout", 16)
    m = evaluate(packed_run.load_model(step), batch, packed_run.config.data.attributes)
    assert table["accuracy"].iloc[0] == pytest.approx(m.correct.mean().item(), abs=1e-6)
    assert table["loss"].iloc[0] == pytest.approx(m.loss.mean().item(), rel=1e-5)


def test_each_condition_places_the_documents_it_names(packed_run, monkeypatch):
    """Record the contexts scored: `own` documents are training-template biographies of the query's individual,
    `other` ones of another held-out individual, in the order the condition names; a planted reader (right iff its
    own document is in the context) gives the table it should."""
    from workbench.retrieval import reading

    data, seen = packed_run.data, {}

    def recorder(model, batch, contexts, docs, n_attributes, pad_id, chunk=64):
        seen.update(batch=batch, contexts=contexts, docs=docs)
        right = np.array([[float(any(d == c.row for d in c.docs))] * n_attributes for c in contexts])
        return {"correct": right, "loss": 1.0 - right}

    monkeypatch.setattr(reading, "score_contexts", recorder)
    table = reading_test(packed_run, steps=(packed_run.checkpoint_steps[-1],), size=8, n_boot=0, progress=False)
    batch, contexts, docs = seen["batch"], seen["contexts"], seen["docs"]
    names = {int(i): data.biographer.name_tokens(int(i)) for i in batch.individuals}
    for c in contexts:
        query = int(batch.individuals[c.row])
        for d in c.docs:
            about = int(batch.individuals[d])
            assert (about == query) == (d == c.row)  # own is the query's individual, other someone else's
            text = docs[d].tolist()  # the document names its individual
            assert any(text[j : j + len(names[about])] == list(names[about]) for j in range(len(text)))
    per = {c: [x.docs for x in contexts[i * 8 : (i + 1) * 8]] for i, c in enumerate(CONDITIONS)}
    assert all(len(d) == 0 for d in per["alone"]) and all(d == (r,) for r, d in enumerate(per["own"]))
    assert all(d[1] == r and d[0] != r for r, d in enumerate(per["other_own"]))
    assert all(d[0] == r and d[1] != r for r, d in enumerate(per["own_other"]))
    acc = table.set_index("condition")["accuracy"]
    assert acc.to_dict() == {"alone": 0.0, "own": 1.0, "other": 0.0, "other_own": 1.0, "own_other": 1.0}


def test_other_rows_name_another_individual():
    ids = np.array([3, 3, 5, 7, 3])
    other = _other_rows(ids)
    assert all(ids[o] != ids[r] for r, o in enumerate(other))


def test_bad_reading_tests_are_refused_before_any_compute(tiny_run, packed_run):
    with pytest.raises(ValueError, match=r"run=.* out of range: allowed a packed run whose context holds 1 document"):
        reading_test(tiny_run, conditions=("own",), progress=False)
    with pytest.raises(ValueError, match=r"reading.conditions\[\]='mine' is out of range"):
        reading_test(packed_run, conditions=("mine",), progress=False)
    with pytest.raises(ValueError, match=r"reading.steps\[\]=7 is out of range: allowed a checkpoint step"):
        reading_test(packed_run, steps=(7,), progress=False)


def test_the_cli_prints_the_reading_tests_after_the_study(packed_run, capsys):
    from workbench.cli import main

    step = str(packed_run.checkpoint_steps[-1])
    assert (
        main(
            [
                "retrieve",
                str(packed_run.path),
                "--steps",
                step,
                "--votes",
                "1",
                "--name",
                "cli-reading",
                "--reading",
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "reading tests, held-out accuracy" in out
    header = out.split("reading tests")[1].splitlines()[1]
    assert all(c in header for c in CONDITIONS)

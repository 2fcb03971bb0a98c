"""Reading tests: does the model read a fact from its context, and does it match the name or the position?

Held-out individuals (never trained on, so the weights cannot know them) are evaluated on their evaluation
biography (evaluation templates) after documents placed in the context, scored teacher-forced like the run's own
metrics (`augment.score_contexts`). A document is a training-template biography: `own` of the same individual,
`other` of another held-out individual. Conditions:

    alone        no document (the run's own held-out evaluation)
    own          [own]            reading: the answer is in the context
    other        [other]          a distractor alone: reading must not copy it (accuracy near `alone`)
    other_own    [other, own]     the answer second: reading matches the name, not the slot
    own_other    [own, other]     the answer first, a distractor nearest the query

    table = reading_test(run, steps=[400, 800])  # step, condition, accuracy (95% interval), loss, n
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.config import check, check_indices, check_int
from workbench.retrieval.augment import Context, context_room, score_contexts

CONDITIONS: dict[str, tuple[str, ...]] = {
    "alone": (),
    "own": ("own",),
    "other": ("other",),
    "other_own": ("other", "own"),
    "own_other": ("own", "other"),
}
_STREAM_READING = 41


def run_room(run) -> int:
    """How many documents fit before a query biography in the run's model context."""
    return context_room(run.config.model.n_ctx or run.data.max_length, run.data.biographer.max_length())


def check_reading(run, conditions: tuple[str, ...], size: int, steps: tuple[int, ...]) -> None:
    """One-line errors before any compute: a packed run whose context holds the conditions' documents, known
    conditions, checkpoint steps of the run, and enough held-out individuals."""
    for c in conditions:
        check(c in CONDITIONS, "reading.conditions[]", " | ".join(CONDITIONS), c)
    check(len(conditions) > 0, "reading.conditions", "at least one condition", conditions)
    room = run_room(run)
    need = max(len(CONDITIONS[c]) for c in conditions)
    check(
        room >= need,
        "run",
        f"a packed run whose context holds {need} document(s) before the query "
        f"(data.packing.k >= {need + 1}); this one holds {max(room, 0)}",
        str(run.path),
    )
    n_heldout = len(run.data.population.heldout)
    check(n_heldout >= 2, "run", "a run with at least 2 held-out individuals (data.n_heldout)", str(run.path))
    check_int("reading.size", size, 2, 100_000)
    check_indices("reading.steps", steps)
    for s in steps:
        check(s in run.checkpoint_steps, "reading.steps[]", f"a checkpoint step of the run: {run.checkpoint_steps}", s)


def reading_test(
    run,
    steps=(),
    size: int = 256,
    conditions: tuple[str, ...] | None = None,
    chunk: int = 64,
    n_boot: int = 500,
    progress: bool = True,
) -> pd.DataFrame:
    """Per (step, condition): held-out accuracy (every token of a value right, teacher-forced) with a 95% bootstrap
    interval over biographies, and loss (summed over a value's tokens, mean over values); `steps` default to every
    checkpoint, `conditions` to every one the run's context holds."""
    from tqdm.auto import tqdm

    from workbench.run import load_run

    run = run if hasattr(run, "data") else load_run(run)
    data = run.data
    steps = tuple(steps) or tuple(run.checkpoint_steps)
    if conditions is None:
        conditions = tuple(c for c, docs in CONDITIONS.items() if len(docs) <= max(run_room(run), 1))
    check_reading(run, tuple(conditions), size, steps)
    batch = data.eval_batch("heldout", size)
    individuals = batch.individuals.numpy()
    own = data.biographer.batch(individuals, "training", np.random.default_rng([run.config.seed, _STREAM_READING]))
    docs = [own.tokens[r, : int(own.mask[r].sum())].numpy() for r in range(len(own))]
    other = _other_rows(individuals)
    contexts = [
        Context(r, tuple(r if d == "own" else int(other[r]) for d in CONDITIONS[c]))
        for c in conditions
        for r in range(len(batch))
    ]
    n_attr = len(data.config.data.attributes)
    rows = []
    for step in tqdm(steps, desc="reading", disable=not progress):
        scores = score_contexts(run.load_model(step), batch, contexts, docs, n_attr, data.tokenizer.pad_id, chunk)
        for i, c in enumerate(conditions):
            part = slice(i * len(batch), (i + 1) * len(batch))
            per_row = scores["correct"][part].mean(1)
            boot = per_row[np.random.default_rng(0).integers(len(per_row), size=(n_boot, len(per_row)))].mean(1)
            rows.append(
                {
                    "step": step,
                    "condition": c,
                    "accuracy": per_row.mean(),
                    "accuracy_lo": np.quantile(boot, 0.025) if n_boot else np.nan,
                    "accuracy_hi": np.quantile(boot, 0.975) if n_boot else np.nan,
                    "loss": scores["loss"][part].mean(),
                    "n": len(batch),
                }
            )
    return pd.DataFrame(rows)


def _other_rows(individuals: np.ndarray) -> np.ndarray:
    """For each row, the nearest following row about another individual (cyclically): its `other` document."""
    n = len(individuals)
    out = np.empty(n, dtype=np.int64)
    for r in range(n):
        out[r] = next((r + j) % n for j in range(1, n) if individuals[(r + j) % n] != individuals[r])
    return out

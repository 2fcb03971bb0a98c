"""Retrieval-augmented evaluation: documents from the datastore placed before an evaluation biography.

For each evaluation biography e and attribute a, the query is e up to a's value (its BOS excluded).
The context is [doc_1] ... [doc_m] [e], each a whole biography from its BOS, as in a packed training
sequence; a's value is scored teacher-forced, exactly as the run's own metrics score it (attribute loss
summed over the value's tokens; right when every token is the argmax). Modes:

    none    e alone (the run's own evaluation)
    bm25    the top-m BM25 documents for the query, the best nearest the query
    oracle  m documents about e's individual (separates reading errors from retrieval errors; seen only)
    vote    self-consistency: `votes` contexts, each with one of the top BM25 documents; the majority
            of their predicted values wins (ties: the higher-ranked document's answer)

A prediction is the argmax token at each of the value's positions (teacher-forced): it equals the
greedy decoding whenever that is right, so a vote is right exactly when greedy decodings' majority would be,
up to how wrong answers split. `copied` marks predictions equal to the top document's individual's
value: on held-out individuals (nothing to retrieve) that is retrieval-induced hallucination.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.config import check, check_int
from workbench.data.kinds import VALUE

MODES = ("none", "bm25", "oracle", "vote")


@dataclass(frozen=True)
class Context:
    """One forward pass: evaluation row `row` after the documents `docs` (datastore indices, in order)."""

    row: int
    docs: tuple[int, ...]


def context_room(n_ctx: int, biography_length: int) -> int:
    """How many documents fit before a query biography in the model's context."""
    return n_ctx // biography_length - 1


def check_room(n_ctx: int, biography_length: int, m: int, votes: int, name: str = "retrieval.m") -> None:
    """`m` documents (and one for each vote) must fit before the query: a ValueError naming the field."""
    room = context_room(n_ctx, biography_length)
    if room < 1:
        raise ValueError(
            f"{name}={m}: the model's context (n_ctx={n_ctx}) holds one biography of up to "
            f"{biography_length} tokens, no room for a document: allowed a run with data.packing.k > 1 "
            f"(or a larger model.n_ctx)"
        )
    check_int(name, m, 1, room)
    check_int("retrieval.votes", votes, 0, 1000)


def queries(batch, n_attributes: int) -> list[list[np.ndarray]]:
    """[row][attribute]: the tokens of each biography up to that attribute's value (BOS included)."""
    starts = batch.value_query_positions(n_attributes) + 1  # the value's first position
    tokens = batch.tokens.numpy()
    return [[tokens[r, : int(starts[r, a])] for a in range(n_attributes)] for r in range(len(batch))]


@torch.no_grad()
def score_contexts(
    model, batch, contexts: list[Context], doc_tokens: list[np.ndarray], n_attributes: int, pad_id: int, chunk: int = 64
) -> dict[str, np.ndarray]:
    """Per context and attribute of its query biography: loss [c, a], correct [c, a], top_probability [c, a]
    (mean over the value's tokens) and prediction [c][a] (the argmax tokens at the value, as a string); the
    tokens scored by `metrics.token_scores`, as the run's own metrics are."""
    from workbench.metrics import sum_by, token_scores

    device = next(model.parameters()).device
    lengths = batch.mask.sum(1).tolist()
    out = {k: np.zeros((len(contexts), n_attributes)) for k in ("loss", "correct", "top_probability")}
    predictions: list[list[str]] = []
    for lo in range(0, len(contexts), chunk):
        part = contexts[lo : lo + chunk]
        seqs, offsets = [], []
        for c in part:
            prefix = [doc_tokens[d] for d in c.docs]
            offsets.append(sum(len(p) for p in prefix))
            seqs.append(np.concatenate([*prefix, batch.tokens[c.row, : lengths[c.row]].numpy()]))
        t = max(len(s) for s in seqs)
        tokens = torch.full((len(seqs), t), pad_id, dtype=torch.long)
        is_value = torch.zeros((len(seqs), t), dtype=torch.bool)
        attr = torch.zeros((len(seqs), t), dtype=torch.long)
        for i, (c, s, o) in enumerate(zip(part, seqs, offsets)):
            n = lengths[c.row]
            tokens[i, : len(s)] = torch.from_numpy(s)
            is_value[i, o : o + n] = batch.kind[c.row, :n] == VALUE
            attr[i, o : o + n] = batch.attribute[c.row, :n].long().clamp(min=0)
        scores = token_scores(model(tokens.to(device)).float().cpu(), tokens, is_value)
        is_value, attr = is_value[:, 1:], attr[:, 1:]

        def per(x: torch.Tensor, attr: torch.Tensor = attr) -> np.ndarray:
            return sum_by(attr, x, n_attributes).numpy()

        n_val = np.maximum(per(is_value), 1)
        out["loss"][lo : lo + len(part)] = per(scores.nll)
        out["correct"][lo : lo + len(part)] = per(scores.wrong) == 0
        out["top_probability"][lo : lo + len(part)] = per(scores.top_probability) / n_val
        for i in range(len(seqs)):
            where = [is_value[i] & (attr[i] == a) for a in range(n_attributes)]
            predictions.append(["-".join(map(str, scores.argmax[i][w].tolist())) for w in where])
    out["prediction"] = np.array(predictions, dtype=object).reshape(len(contexts), n_attributes)
    return out


def majority(predictions: list[str]) -> str:
    """The most frequent prediction; a tie goes to the one that appears first (the higher-ranked document)."""
    counts = Counter(predictions)
    best = max(counts.values())
    return next(p for p in predictions if counts[p] == best)


def augmented_items(
    model, data, store, batch, group: str, modes: tuple[str, ...], m: int, votes: int, chunk: int = 64
) -> pd.DataFrame:
    """One row per (biography, attribute, mode) of `batch` (an evaluation batch of `group`): individual,
    loss, correct, top_probability, prediction, truth, the top document's individual (`retrieved`), whether
    a retrieved document is about the individual (`hit`) and whether the prediction copies the top
    document's individual's value (`copied`)."""
    for mode in modes:
        check(mode in MODES, "retrieval.modes[]", " | ".join(MODES), mode)
    n_attr = len(data.config.data.attributes)
    bio = data.biographer
    individuals = batch.individuals.tolist()
    depth = max(m if "bm25" in modes else 0, votes if "vote" in modes else 0, 1)
    flat_queries = [q for row in queries(batch, n_attr) for q in row]
    ranked, _ = store.search(flat_queries, min(depth, len(store)))
    ranked = ranked.reshape(len(batch), n_attr, -1)
    truth = [["-".join(map(str, bio.value_tokens(i, a))) for a in range(n_attr)] for i in individuals]

    plans: dict[str, list[list[list[Context]]]] = {}  # mode -> [row][attribute] -> contexts
    for mode in modes:
        rows = []
        for r, ind in enumerate(individuals):
            own = store.of_individual(ind)
            if mode == "oracle" and len(own) == 0:
                rows.append(None)
                continue
            per_attr = []
            for a in range(n_attr):
                if mode == "none":
                    per_attr.append([Context(r, ())])
                elif mode == "bm25":  # the best document last: nearest the query
                    per_attr.append([Context(r, tuple(ranked[r, a, :m][::-1].tolist()))])
                elif mode == "oracle":
                    per_attr.append([Context(r, tuple(own[:m].tolist()))])
                else:
                    per_attr.append([Context(r, (d,)) for d in ranked[r, a, :votes].tolist()])
            rows.append(per_attr)
        plans[mode] = rows
    unique = sorted(
        {c for rows in plans.values() for per_attr in rows if per_attr for cs in per_attr for c in cs},
        key=lambda c: (len(c.docs), c.row, c.docs),
    )
    scores = score_contexts(model, batch, unique, store.tokens, n_attr, data.tokenizer.pad_id, chunk)
    at = {c: i for i, c in enumerate(unique)}

    records = []
    for mode, rows in plans.items():
        for r, per_attr in enumerate(rows):
            if per_attr is None:
                continue
            ind = individuals[r]
            for a, cs in enumerate(per_attr):
                idx = [at[c] for c in cs]
                docs = [d for c in cs for d in c.docs]
                top_doc = ranked[r, a, 0] if mode in ("bm25", "vote") else (docs[0] if docs else None)
                retrieved = None if top_doc is None else int(store.individuals[top_doc])
                if mode == "vote":
                    prediction = majority([scores["prediction"][i, a] for i in idx])
                    loss, top = float("nan"), float(np.mean([scores["top_probability"][i, a] for i in idx]))
                else:
                    i = idx[0]
                    prediction, loss, top = (
                        scores["prediction"][i, a],
                        scores["loss"][i, a],
                        scores["top_probability"][i, a],
                    )
                copy_value = None if retrieved is None else "-".join(map(str, bio.value_tokens(retrieved, a)))
                records.append(
                    {
                        "group": group,
                        "row": r,
                        "individual": ind,
                        "attribute": data.config.data.attributes[a],
                        "mode": mode,
                        "loss": loss,
                        "correct": float(prediction == truth[r][a]),
                        "top_probability": top,
                        "prediction": prediction,
                        "truth": truth[r][a],
                        "retrieved": -1 if retrieved is None else retrieved,
                        "hit": float(any(int(store.individuals[d]) == ind for d in docs)) if docs else float("nan"),
                        "copied": float("nan") if copy_value is None else float(prediction == copy_value),
                    }
                )
    return pd.DataFrame.from_records(records)

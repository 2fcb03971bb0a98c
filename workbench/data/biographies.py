"""Biographies: one sentence per attribute from the individual's templates, shuffled, concatenated.

Everything is pre-tokenized once (name parts, values, template pieces); a biography is spliced from
those token lists, so building a batch is list concatenation plus one numpy scatter. Every token
carries labels: its kind (BOS, template text, name, attribute value, padding), the attribute of
its sentence, and whether it is the first token of an attribute value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from workbench.data.kinds import BOS, NAME, TEXT, VALUE
from workbench.data.pools import ATTRIBUTE_POOL, MONTHS, split_date
from workbench.data.population import Population
from workbench.data.templates import TEMPLATES
from workbench.data.tokenizer import BiographyTokenizer, template_pieces

if TYPE_CHECKING:  # torch loads only when a batch is built: `workbench data stats` stays light
    from workbench.data.batch import Batch

SPLITS = ("training", "evaluation")  # the template split (docs/method.md §1.3)


class Biographer:
    """Builds token-level biographies for a population with a tokenizer."""

    def __init__(self, population: Population, tokenizer: BiographyTokenizer):
        self.population, self.tokenizer = population, tokenizer
        cfg, pools, enc = population.config, population.pools, tokenizer.encode_segment
        self.attributes = cfg.attributes
        self.first = [enc(" " + n) for n in pools.first_names]
        self.last = [enc(" " + n) for n in pools.last_names]
        self.month = [enc(" " + m) for m in MONTHS]
        self.day = [enc(f" {d}") for d in range(1, 32)]
        self.year = [enc(" " + y) for y in pools.years]
        self.comma = enc(",")
        self.values = [
            None if a == "birth_date" else [enc(" " + v) for v in getattr(pools, ATTRIBUTE_POOL[a])]
            for a in cfg.attributes
        ]
        # pieces[a][t] = (prefix, between name and value, after value) token lists
        self.pieces = [
            [tuple(enc(p) if p else [] for p in template_pieces(t)) for t in TEMPLATES[a][: cfg.n_templates]]
            for a in cfg.attributes
        ]

    def name_tokens(self, individual: int) -> list[int]:
        f, m, last = self.population.names[individual]
        return self.first[f] + self.first[m] + self.last[last]

    # -- the one name-corruption rule (activation patching, localisation) ----------------------------
    def name_partner(self, individual: int, candidates, seed: int = 0) -> int | None:
        """The individual whose name corrupts `individual`'s: drawn from `candidates` in an order fixed by
        (seed, individual), the first whose name has as many tokens and differs at every one of them (so
        every position aligns and no name token survives); None when no candidate qualifies."""
        name = self.name_tokens(int(individual))
        rng = np.random.default_rng([seed, int(individual)])
        for candidate in rng.permutation(np.asarray(candidates)).tolist():
            other = self.name_tokens(candidate)
            if candidate != individual and len(other) == len(name) and all(x != y for x, y in zip(other, name)):
                return candidate
        return None

    def with_names(self, batch: Batch, partners) -> Batch:
        """`batch` with each row's name replaced, in every sentence, by its partner's (same token count)."""
        import torch

        tokens = batch.tokens.clone()
        for r, other in enumerate(partners):
            is_name = batch.name_mask[r]
            name, own = self.name_tokens(int(other)), len(self.name_tokens(int(batch.individuals[r])))
            if len(name) != own:  # a divisor of the name-token count would still misalign the sentences
                raise ValueError(
                    f"partners[{r}]={other}: its name has {len(name)} tokens, row {r}'s name {own}: "
                    "allowed a name of the same length"
                )
            tokens[r, is_name] = torch.as_tensor(name * (int(is_name.sum()) // own), dtype=tokens.dtype)
        return type(batch)(tokens, batch.kind, batch.attribute, batch.value_start, batch.individuals)

    def corrupt_names(self, batch: Batch, candidates, seed: int = 0) -> tuple[Batch, Batch]:
        """(clean, corrupted): rows with a `name_partner` among `candidates`, and the same rows with the
        partner's name; rows without a partner are dropped from both."""
        partners = [self.name_partner(i, candidates, seed) for i in batch.individuals.tolist()]
        keep = [r for r, p in enumerate(partners) if p is not None]
        if not keep:
            raise ValueError(
                "no individual of the batch has a name partner (same token count, every token "
                "different) among the candidates"
            )
        clean = batch[np.asarray(keep)]
        return clean, self.with_names(clean, [partners[r] for r in keep])

    def value_tokens(self, individual: int, attribute: int) -> list[int]:
        v = int(self.population.values[individual, attribute])
        if self.values[attribute] is None:
            y, mo, d = split_date(v)
            return self.month[mo] + self.day[d] + self.comma + self.year[y]
        return self.values[attribute][v]

    def max_length(self) -> int:
        """An upper bound (tight: reachable) on a biography's length in tokens, BOS included."""
        longest = lambda lists: max(len(x) for x in lists)  # noqa: E731
        name = 2 * longest(self.first) + longest(self.last)
        total = 1
        for j in range(len(self.attributes)):
            total += name + max(sum(len(p) for p in ps) for ps in self.pieces[j])
            if self.values[j] is None:
                total += longest(self.month) + longest(self.day) + len(self.comma) + longest(self.year)
            else:
                total += longest(self.values[j])
        return total

    def batch(self, individuals: np.ndarray, split: str, rng: np.random.Generator, pad_to: int = 0) -> Batch:
        """Biographies of `individuals` from their training or evaluation templates, as a `Batch`.

        The template of each sentence and the sentence order are drawn from `rng`; `pad_to` fixes
        the padded length (0: the longest biography in the batch).
        """
        return self.as_batch(self.arrays(individuals, split, rng, pad_to))

    def packed_batch(self, groups: np.ndarray, split: str, rng: np.random.Generator) -> Batch:
        """[batch, k] individuals -> one row per group: its k biographies, each from BOS, concatenated
        (`workbench.data.packing`); k=1 gives exactly `batch(groups[:, 0], ...)`."""
        from workbench.data.packing import pack_arrays

        groups = np.asarray(groups, dtype=np.int64)
        k = groups.shape[1]
        arrays = self.arrays(groups.reshape(-1), split, rng)
        return self.as_batch(arrays if k == 1 else pack_arrays(arrays, k, self.tokenizer.pad_id))

    @staticmethod
    def as_batch(arrays: dict) -> Batch:
        """`arrays` (or packed arrays, whose `individuals` are [batch, k]) as a `Batch`."""
        import torch

        from workbench.data.batch import Batch

        t = {
            k: torch.from_numpy(np.ascontiguousarray(arrays[k]))
            for k in ("tokens", "kind", "attribute", "value_start", "individuals")
        }
        ind = t.pop("individuals")
        return Batch(
            **t,
            individuals=ind[:, 0].contiguous() if ind.ndim == 2 else ind,
            packed_individuals=ind if ind.ndim == 2 else None,
        )

    def arrays(self, individuals: np.ndarray, split: str, rng: np.random.Generator, pad_to: int = 0) -> dict:
        """`batch` as numpy arrays (tokens, kind, attribute, value_start, individuals, lengths), torch-free, and
        templates [batch, attribute]: each sentence's template (index into TEMPLATES[attribute])."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is out of range: allowed training | evaluation")
        cfg = self.population.config
        individuals = np.asarray(individuals, dtype=np.int64)
        b, n_attr = len(individuals), len(self.attributes)
        lo, n = (
            (0, cfg.n_train_templates)
            if split == "training"
            else (cfg.n_train_templates, cfg.n_templates - cfg.n_train_templates)
        )
        order = np.argsort(rng.random((b, n_attr)), axis=1)
        slot = lo + rng.integers(n, size=(b, n_attr))
        templates = self.population.template_order[individuals[:, None], np.arange(n_attr)[None, :], slot]

        flat: list[int] = []
        lengths = np.empty(b, dtype=np.int64)
        seg_len: list[int] = []
        seg_kind: list[int] = []
        seg_attr: list[int] = []
        for i, ind in enumerate(individuals.tolist()):
            name = self.name_tokens(ind)
            start = len(flat)
            flat.append(self.tokenizer.bos_id)
            seg_len.append(1), seg_kind.append(BOS), seg_attr.append(-1)
            for a in order[i].tolist():
                prefix, between, after = self.pieces[a][templates[i, a]]
                value = self.value_tokens(ind, a)
                flat += prefix + name + between + value + after
                seg_len += (len(prefix), len(name), len(between), len(value), len(after))
                seg_kind += (TEXT, NAME, TEXT, VALUE, TEXT)
                seg_attr += (a, a, a, a, a)
            lengths[i] = len(flat) - start
        seg_len_a = np.asarray(seg_len)
        kind_flat = np.repeat(np.asarray(seg_kind, dtype=np.int8), seg_len_a)
        attr_flat = np.repeat(np.asarray(seg_attr, dtype=np.int8), seg_len_a)
        starts = np.cumsum(seg_len_a) - seg_len_a
        vstart_flat = np.zeros(len(flat), dtype=bool)
        vstart_flat[starts[(np.asarray(seg_kind) == VALUE) & (seg_len_a > 0)]] = True

        t = max(int(lengths.max()), pad_to)
        if pad_to and lengths.max() > pad_to:
            raise ValueError(f"a biography has {lengths.max()} tokens, more than pad_to={pad_to}")
        where = np.arange(t)[None, :] < lengths[:, None]
        tokens = np.full((b, t), self.tokenizer.pad_id, dtype=np.int64)
        kind = np.zeros((b, t), dtype=np.int8)
        attr = np.full((b, t), -1, dtype=np.int8)
        vstart = np.zeros((b, t), dtype=bool)
        tokens[where], kind[where], attr[where], vstart[where] = flat, kind_flat, attr_flat, vstart_flat
        return {
            "tokens": tokens,
            "kind": kind,
            "attribute": attr,
            "value_start": vstart,
            "individuals": individuals,
            "lengths": lengths,
            "templates": templates,
        }

    def text(self, batch: Batch, row: int, mark: bool = False) -> str:
        """Decoded biography; with mark, names as [[...]] and values as <<...>>."""
        ids, kinds = batch.tokens[row][batch.mask[row]].tolist(), batch.kind[row][batch.mask[row]].tolist()
        if not mark:
            return self.tokenizer.decode(ids[1:])
        out, cur, cur_kind = [], [], None
        for tok, k in zip(ids[1:], kinds[1:]):
            if k != cur_kind and cur:
                out.append(_wrap(self.tokenizer.decode(cur), cur_kind))
                cur = []
            cur.append(tok)
            cur_kind = k
        out.append(_wrap(self.tokenizer.decode(cur), cur_kind))
        return "".join(out)


def _wrap(text: str, kind: int | None) -> str:
    body = text.lstrip(" ")
    lead = text[: len(text) - len(body)]
    return lead + {NAME: f"[[{body}]]", VALUE: f"<<{body}>>"}.get(kind, body)

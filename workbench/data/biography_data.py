"""`BiographyData`: a run's population, tokenizer and sampler behind one object.

Training batches are a pure function of (seed, step); evaluation sets are fixed by the seed and
drawn from the evaluation templates (seen individuals) or from the held-out / new individuals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from workbench.config import RunConfig
from workbench.data.biographies import Biographer
from workbench.data.edits import SequenceEdit
from workbench.data.packing import insert_context, pack_individuals
from workbench.data.population import GROUPS, Population, make_population
from workbench.data.samplers import Sampler, finetune_sampler, make_sampler
from workbench.data.tokenizer import BiographyTokenizer, train_tokenizer

if TYPE_CHECKING:  # torch loads with the first batch, not with the data engine
    from workbench.data.batch import Batch

_STREAM_BATCH, _STREAM_EVAL = 21, 22


class BiographyData:
    """Everything a run needs from the data side."""

    def __init__(
        self, config: RunConfig, tokenizer: BiographyTokenizer | None = None, population: Population | None = None
    ):
        self.config = config
        d = config.data
        self.population = population if population is not None else make_population(d, config.seed)
        self.tokenizer = (
            tokenizer
            if tokenizer is not None
            else train_tokenizer(self.population.pools, d.attributes, d.n_templates, d.vocab_size)
        )
        self.biographer = Biographer(self.population, self.tokenizer)
        self.sampler = self._make_sampler()
        self.edit: SequenceEdit | None = None  # removed / duplicated training sequences (data attribution)

    def _make_sampler(self) -> Sampler:
        c, t = self.config, self.config.train
        if c.finetune is not None:
            new = self.population.new[: c.finetune.n_new]
            return finetune_sampler(new, self.population.seen, c.finetune.replay_weight, t.batch_size, c.seed + 1)
        # a packed run draws k biographies per sequence from the same distribution
        return make_sampler(c.data.sampler, self.population.seen, t.batch_size * c.data.packing.k, t.steps, c.seed)

    @property
    def eval_groups(self) -> tuple[str, ...]:
        """The groups a run evaluates: seen, held-out (when any) and, in fine-tuning, new individuals."""
        return tuple(
            g for g in GROUPS if len(self.population.group(g)) and (g != "new" or self.config.finetune is not None)
        )

    @property
    def max_length(self) -> int:
        """The longest possible training sequence in tokens (k biographies when packed)."""
        return self.config.data.packing.k * self.biographer.max_length()

    def train_individuals(self, step: int) -> np.ndarray:
        """[batch, k]: the individuals of each training sequence of a step (k=1 unless packed)."""
        p = self.config.data.packing
        if self.config.finetune is not None or p.k == 1:
            return self.sampler.individuals(step)[:, None]
        rows = pack_individuals(self.sampler.individuals(step), p.k, p.q_same, self.config.seed, step)
        return insert_context(rows, p.q_ctx, self.population.context, self.config.seed, step)

    def train_batch(self, step: int) -> Batch:
        """The training batch of a step (training templates), identical on every call; with `edit`
        set, its removed rows are left out and its duplicated rows repeated (the others unchanged)."""
        groups = self.train_individuals(step)
        if groups.shape[1] == 1:
            batch = self.biographer.batch(groups[:, 0], "training", self._batch_rng(step))
        else:
            batch = self.biographer.packed_batch(groups, "training", self._batch_rng(step))
        rows = None if self.edit is None else self.edit.rows(step)
        return batch if rows is None else batch[rows]

    def train_templates(self, step: int) -> np.ndarray:
        """[batch, attribute] ([batch, k, attribute] when packed): the template (index into
        TEMPLATES[attribute]) of each sentence of the step's unedited training batch (as `train_batch`)."""
        groups = self.train_individuals(step)
        templates = self.biographer.arrays(groups.reshape(-1), "training", self._batch_rng(step))["templates"]
        return templates if groups.shape[1] == 1 else templates.reshape(*groups.shape, -1)

    def set_edit(self, edit: SequenceEdit | None) -> None:
        """Train on edited batches from now on (None: the original ones); the edit's batch size must match."""
        if edit is not None and edit.batch_size != self.config.train.batch_size:
            raise ValueError(
                f"edit.batch_size={edit.batch_size} is out of range: allowed "
                f"{self.config.train.batch_size} (train.batch_size)"
            )
        self.edit = edit

    def _batch_rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, _STREAM_BATCH, step])

    def eval_batch(self, group: str = "seen", size: int | None = None, seed_offset: int = 0) -> Batch:
        """A fixed evaluation set: `size` biographies of individuals of `group` on evaluation templates.

        group: 'seen', 'heldout', or 'new' (the new individuals in use); see `population.GROUPS`.
        """
        size = size or self.config.train.eval_size
        ids = np.asarray(self.population.group(group))
        if group == "new" and self.config.finetune is not None:
            ids = ids[: self.config.finetune.n_new]
        if len(ids) == 0:
            raise ValueError(f"group={group!r} has no individuals in this run")
        rng = np.random.default_rng([self.config.seed, _STREAM_EVAL, GROUPS.index(group), seed_offset])
        chosen = rng.choice(ids, size=size, replace=size > len(ids))
        return self.biographer.batch(chosen, "evaluation", rng)

    def stats(self) -> dict:
        """Pool sizes, templates per attribute, baseline, vocabulary and lengths (for `data stats`)."""
        d, pools = self.config.data, self.population.pools
        lengths = self.biographer.arrays(self.sampler.individuals(0), "training", self._batch_rng(0))["lengths"]
        return {
            "pool_sizes": {
                k: len(getattr(pools, k))
                for k in ("first_names", "last_names", "cities", "universities", "majors", "companies", "years")
            },
            "n_values": d.n_values,
            "templates_per_attribute": {a: d.n_templates for a in d.attributes},
            "train_templates_per_individual": d.n_train_templates,
            "eval_templates_per_individual": d.n_templates - d.n_train_templates,
            "no_knowledge_baseline": d.no_knowledge_baseline,
            "n_individuals": d.n_individuals,
            "n_heldout": d.n_heldout,
            "n_finetune": d.n_finetune,
            "vocab_size": self.tokenizer.vocab_size,
            "mean_biography_tokens": float(lengths.mean()),
            "longest_possible_biography_tokens": self.max_length,
        }

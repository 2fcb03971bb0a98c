"""A byte-level BPE tokenizer trained deterministically on the templates and pools, with splicing.

Names and attribute values are tokenized on their own and spliced between template-text pieces,
so a value's tokens never merge with neighbouring text or punctuation ("1990." is [ 1990][.]).
Every segment is encoded with its leading space (" Paris"), so decoding a value's tokens gives
exactly " " + value, and decoding a whole biography gives the plain text.
"""

from __future__ import annotations

import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from workbench.atomic import atomic_write_text
from workbench.data.pools import MONTHS, Pools
from workbench.data.templates import TEMPLATES

PAD, BOS = "<|pad|>", "<|bos|>"


class BiographyTokenizer:
    """Wraps a `tokenizers.Tokenizer`; `encode_segment` is the only encoding path."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.token_to_id(PAD)
        self.bos_id = tokenizer.token_to_id(BOS)
        if self.pad_id is None or self.bos_id is None:
            raise ValueError(f"tokenizer lacks the special tokens {PAD} and {BOS}")
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode_segment(self, text: str) -> list[int]:
        """Token ids of one segment on its own (a name part, a value, a piece of template text)."""
        ids = self._cache.get(text)
        if ids is None:
            ids = self._cache[text] = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ids

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_strings(self, ids) -> list[str]:
        """Each token decoded on its own (for labelled displays)."""
        return [self.tokenizer.decode([int(i)], skip_special_tokens=False) for i in ids]

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    def save(self, path: str | os.PathLike) -> None:
        """Atomic write of tokenizer.json."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BiographyTokenizer":
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"cannot read tokenizer file {path}: {e}") from e

    def to_transformers(self):
        """The same tokenizer as a `transformers.PreTrainedTokenizerFast` (what a HookedTransformer's string
        methods use), right padding, BOS as its BOS and EOS (a biography ends where the next one's BOS begins)."""
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(
            tokenizer_object=self.tokenizer, bos_token=BOS, eos_token=BOS, pad_token=PAD, padding_side="right"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BiographyTokenizer) and json.loads(self.to_json()) == json.loads(other.to_json())

    __hash__ = None  # type: ignore[assignment]


def training_corpus(pools: Pools, attributes: tuple[str, ...], n_templates: int) -> list[str]:
    """The segments the tokenizer is trained on, in a fixed order (determinism)."""
    corpus: list[str] = []
    for a in attributes:
        for t in TEMPLATES[a][:n_templates]:
            corpus.extend(p for p in template_pieces(t) if p)
    names = pools.first_names + pools.last_names
    values = pools.cities + pools.universities + pools.majors + pools.companies
    corpus.extend(" " + v for v in names + values + MONTHS + pools.years)
    corpus.extend(f" {d}" for d in range(1, 32))
    corpus.append(",")
    return corpus


def template_pieces(template: str) -> tuple[str, str, str]:
    """'Today, {name} works for {value}.' -> (' Today,', ' works for', '.')."""
    before_name, rest = template.split("{name}")
    between, after_value = rest.split("{value}")
    prefix = " " + before_name.strip() if before_name.strip() else ""
    return prefix, between.rstrip(), after_value


def train_tokenizer(pools: Pools, attributes: tuple[str, ...], n_templates: int, vocab_size: int) -> BiographyTokenizer:
    """Train byte-level BPE on the segments; deterministic for a given corpus and vocab size."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
    )
    tok.train_from_iterator(training_corpus(pools, attributes, n_templates), trainer=trainer)
    return BiographyTokenizer(tok)

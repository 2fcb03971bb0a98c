"""`Batch`: padded, labelled biographies as tensors, and the study's token roles defined on them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from workbench.data.kinds import BOS, NAME, PAD


@dataclass
class Batch:
    """Padded biographies (right padding), one per row, with per-token labels.

    A packed training batch (`data.packing.k` > 1) holds k biographies per row, each starting with BOS;
    `individuals` is then the first one's and `packed_individuals` lists all k."""

    tokens: Int[Tensor, "batch pos"]
    kind: Int[Tensor, "batch pos"]  # PAD | BOS | TEXT | NAME | VALUE
    attribute: Int[Tensor, "batch pos"]  # index into config.attributes of the token's sentence; -1 on BOS/PAD
    value_start: Bool[Tensor, "batch pos"]  # first token of an attribute value
    individuals: Int[Tensor, " batch"]  # global individual ids (of the first biography of a packed row)
    packed_individuals: Int[Tensor, "batch biography"] | None = None  # None: one biography per row

    @property
    def n_biographies(self) -> int:
        """Biographies per row (1 unless packed)."""
        return 1 if self.packed_individuals is None else self.packed_individuals.shape[1]

    @property
    def biography(self) -> Int[Tensor, "batch pos"]:
        """Which biography of its row each token belongs to (0 .. n_biographies-1; -1 on padding)."""
        index = (self.kind == BOS).long().cumsum(1) - 1
        return index.masked_fill(~self.mask, -1)

    @property
    def mask(self) -> Bool[Tensor, "batch pos"]:
        """True on real tokens, False on padding."""
        return self.kind != PAD

    # -- the study's token roles (one definition, used by attention metrics, stability, probes) --------
    @property
    def name_mask(self) -> Bool[Tensor, "batch pos"]:
        """Every name token (the full name is repeated in every sentence)."""
        return self.kind == NAME

    @property
    def name_end_mask(self) -> Bool[Tensor, "batch pos"]:
        """The last token of each name occurrence (one per sentence), where early layers gather the name."""
        is_name = self.name_mask
        continues = torch.zeros_like(is_name)
        continues[:, :-1] = is_name[:, 1:] & (self.attribute[:, 1:] == self.attribute[:, :-1])
        return is_name & ~continues

    @property
    def first_name_end(self) -> Int[Tensor, " batch"]:
        """Position of the last name token of each biography's first sentence: there the model has seen
        the full name and nothing else about the individual."""
        return self.name_end_mask.int().argmax(1)

    @property
    def value_query_mask(self) -> Bool[Tensor, "batch pos"]:
        """Positions whose next-token prediction is the first token of an attribute value."""
        mask = torch.zeros_like(self.value_start)
        mask[:, :-1] = self.value_start[:, 1:]
        return mask

    def value_query_positions(self, n_attributes: int) -> Int[Tensor, "batch attribute"]:
        """Per attribute (index into config.attributes): the position predicting its value's first token."""
        starts = [(self.value_start & (self.attribute == j)).int().argmax(1) for j in range(n_attributes)]
        return torch.stack(starts, 1) - 1

    def to(self, device: str | torch.device, non_blocking: bool = False) -> "Batch":
        return self._map(lambda x: x.to(device, non_blocking=non_blocking))

    def __getitem__(self, rows) -> "Batch":
        return self._map(lambda x: x[rows])

    def _map(self, f) -> "Batch":
        return Batch(
            **{k.name: None if getattr(self, k.name) is None else f(getattr(self, k.name)) for k in fields(self)}
        )

    def __len__(self) -> int:
        return self.tokens.shape[0]


def cat_batches(batches: Sequence[Batch], pad_id: int) -> Batch:
    """The rows of several batches as one, right-padded to the longest (pad_id tokens, PAD kind)."""
    t = max(b.tokens.shape[1] for b in batches)
    fill = {"tokens": pad_id, "kind": PAD, "attribute": -1, "value_start": False}
    if len({b.n_biographies for b in batches}) > 1:
        raise ValueError("cat_batches: the batches hold different numbers of biographies per row: allowed one")

    def padded(b: Batch, name: str) -> Tensor:
        x = getattr(b, name)
        if name not in fill or x.shape[1] == t:
            return x
        return torch.cat([x, torch.full((len(b), t - x.shape[1]), fill[name], dtype=x.dtype)], 1)

    return Batch(
        **{
            f.name: None if getattr(batches[0], f.name) is None else torch.cat([padded(b, f.name) for b in batches])
            for f in fields(Batch)
        }
    )

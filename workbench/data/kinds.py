"""Token kinds: the label every biography token carries (padding, BOS, template text, name, value).

Torch-free on purpose: the data engine uses these without loading torch (see `workbench.data.batch`).
"""

from __future__ import annotations

PAD, BOS, TEXT, NAME, VALUE = 0, 1, 2, 3, 4
KIND_NAMES = {PAD: "pad", BOS: "bos", TEXT: "text", NAME: "name", VALUE: "value"}


def token_labels(tokenizer, tokens, kinds) -> list[str]:
    """Each token decoded on its own, names as ``[tok]`` and attribute values as ``<tok>``."""
    marks = {NAME: "[{}]", VALUE: "<{}>"}
    return [marks.get(int(k), "{}").format(s) for s, k in zip(tokenizer.token_strings(tokens), kinds)]

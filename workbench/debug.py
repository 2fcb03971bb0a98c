"""Debug mode: full tracebacks instead of the one-line errors, for maintainers.

On with `workbench --debug COMMAND ...` or the environment variable WORKBENCH_DEBUG=1 (any value but
empty or 0): the CLI prints the traceback of an error it would otherwise report in one line, and a
report section that fails prints its traceback on stderr (the page itself only ever shows one line).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_forced = False


def enabled() -> bool:
    return _forced or os.environ.get("WORKBENCH_DEBUG", "").strip() not in ("", "0")


@contextlib.contextmanager
def forced(on: bool = True) -> Iterator[None]:
    """Debug mode on within the block (the CLI's --debug), whatever WORKBENCH_DEBUG says."""
    global _forced
    before, _forced = _forced, _forced or on
    try:
        yield
    finally:
        _forced = before

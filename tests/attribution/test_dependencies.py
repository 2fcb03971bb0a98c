"""Data attribution needs nothing that a plain `pip install -e .` does not install: every module that importing
and running it loads belongs to the standard library, the workbench, or a distribution in the closure of the
workbench's declared runtime dependencies (extras left out)."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys

import pytest


def _runtime_closure() -> set[str]:
    """Normalised names of the workbench's runtime dependencies and theirs, transitively (no extras)."""

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    seen, todo = set(), ["workbench"]
    while todo:
        name = todo.pop()
        if norm(name) in seen:
            continue
        seen.add(norm(name))
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            todo.append(re.match(r"[A-Za-z0-9_.\-]+", req).group(0))
    return seen


def _modules(code: str) -> set[str]:
    """Top-level modules loaded by running `code` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return {m.split(".")[0] for m in out.split()}


@pytest.mark.slow  # two fresh interpreters importing torch
def test_attribution_imports_only_declared_dependencies():
    # what torch and TransformerLens load on their own (optional accelerators they pick up when present) is theirs
    baseline = _modules("import torch, transformer_lens")
    loaded = _modules(
        "import workbench.attribution.ekfac, workbench.attribution.influence, "
        "workbench.attribution.window, workbench.attribution.retrain, workbench.attribution.formation, "
        "workbench.attribution.heads"
    )
    closure = _runtime_closure()
    owners = md.packages_distributions()
    leaked = {}
    for top in loaded - baseline:
        if top in sys.stdlib_module_names or top.startswith("_") or top == "workbench":
            continue
        dists = owners.get(top, [])
        if dists and not any(re.sub(r"[-_.]+", "-", d).lower() in closure for d in dists):
            leaked[top] = dists
    assert "kronfluence" not in loaded
    assert not leaked, f"modules from undeclared distributions: {leaked}"

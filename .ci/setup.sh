#!/usr/bin/env bash
# Set-up on a fresh machine with only python3: installs torch (the CPU wheel 2.13.0, first, when torch is
# absent — a bare `torch` requirement would pull several GB of CUDA packages), then the workbench with its
# runtime dependencies and the notebooks and test extras, editable. Idempotent: a second run installs nothing
# (the check below names modules of every group: runtime, [notebooks], [test]).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# has MODULE...: every module is importable (found, not imported: importing torch and TransformerLens takes
# seconds) and, for `workbench`, installed (not just the source folder in the current directory)
has() {
  "$PY" - "$@" 2>/dev/null <<'EOF'
import importlib.metadata, importlib.util, sys
if any(importlib.util.find_spec(m) is None for m in sys.argv[1:]):
    sys.exit(1)
if "workbench" in sys.argv[1:]:
    # installed, and with the requirements pyproject.toml declares now (an install from before a dependency was
    # added would otherwise be kept, with metadata that no longer says what the workbench needs)
    import re, tomllib
    project = tomllib.load(open("pyproject.toml", "rb"))["project"]
    declared = set(project["dependencies"]) | {r for group in project["optional-dependencies"].values() for r in group}
    installed = {re.sub(r" *;.*", "", r) for r in importlib.metadata.requires("workbench") or []}
    def norm(r):  # name and its specifiers in a fixed order (metadata reorders them)
        name, spec = re.match(r"([A-Za-z0-9_.-]+)(.*)", re.sub(r"\s", "", r)).groups()
        return name.lower().replace("_", "-"), tuple(sorted(filter(None, spec.split(","))))
    if {norm(r) for r in declared} != {norm(r) for r in installed}:
        sys.exit(1)
EOF
}
if ! has torch; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
# runtime, [notebooks] and [test]: modules of each group, any of which a partial install could lack
# the installed (editable) workbench must be this checkout: a clone elsewhere on the same machine would
# otherwise run its notebook kernels and subprocesses on the other checkout's code
here="$(pwd)/workbench/__init__.py"
installed="$(cd / && "$PY" -c "import importlib.util as u; s = u.find_spec('workbench'); print(s.origin if s else '')" 2>/dev/null || true)"
if [ "$installed" != "$here" ] || ! has workbench transformer_lens circuitsvis filelock ray bm25s jupyterlab ipywidgets nbclient \
        nbformat ipykernel pytest ruff beartype psutil playwright scipy; then
  "$PY" -m pip install -q -e ".[notebooks,test]"
fi

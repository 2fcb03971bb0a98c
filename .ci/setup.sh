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
    importlib.metadata.distribution("workbench")
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
# kronfluence without its declared torchvision (see pyproject.toml): its real dependencies come with the workbench
if ! has kronfluence; then
  "$PY" -m pip install -q --no-deps "kronfluence==1.0.1"
fi

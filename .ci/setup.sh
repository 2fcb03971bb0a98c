#!/usr/bin/env bash
# Set-up on a fresh machine with only python3: installs torch (the CPU wheel 2.13.0, first, when torch is
# absent — a bare `torch` requirement would pull several GB of CUDA packages), then the workbench with its
# dependencies, editable. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
if ! "$PY" -c "import workbench, transformer_lens, circuitsvis, nbclient, ipywidgets" 2>/dev/null \
   || ! "$PY" -m pip show -q workbench >/dev/null 2>&1; then
  "$PY" -m pip install -q -e ".[notebooks]"
fi

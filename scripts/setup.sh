#!/usr/bin/env bash
# Set up everything from nothing: a project venv with a CPU torch first, then adabert itself.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: this machine serves the 2.13.0 CPU build locally, an unpinned torch
# would pull a multi-GB CUDA build. GPU users install their own torch before this script.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test,demo]"

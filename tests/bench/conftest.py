"""The bench modules import each other as top-level modules (``python bench/run_bench.py`` puts
bench/ first on sys.path); the tests import them the same way."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

# The end-to-end tests' bench.toml: the tiny teacher, a few steps per phase, one latency run.
TINY_BENCH_TOML = """
[teacher]
name_or_path = "{teacher}"
epochs = 1.0
probe_epochs = 1
[data]
augment_copies = 1
max_seq_length = 32
[supernet]
max_cells = 2
[search]
epochs = 1
max_steps_per_epoch = 2
[retrain]
epochs = 1
max_steps_per_epoch = 2
[run]
cache_dir = "{cache}"
latency_repeats = 1
threads = 1
progress_bar = false
[bench]
latency_threads = [1]
random_genotype_samples = 20
bert_layers = [1, 2]
bert_widths = [32]
"""


@pytest.fixture
def tiny_bench_toml(tmp_path, tiny_teacher_dir) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(TINY_BENCH_TOML.format(teacher=tiny_teacher_dir, cache=tmp_path / "cache"))
    return path

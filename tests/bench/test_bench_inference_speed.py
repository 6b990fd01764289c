"""bench/inference_speed.py: which student it times (the bench's genotype, or one given as a
summary line) and its exit on a malformed line."""

from __future__ import annotations

import sys

import pytest
from inference_speed import bench_student, main

from searchspace import Genotype

LINE = (
    "K=2 | n2: std_conv_3(n0) + dil_conv_7(n1) | n3: avg_pool_3(n0) + std_conv_5(n2) | "
    "n4: identity(n1) + max_pool_3(n3)"
)


def test_a_summary_line_replaces_the_bench_genotype_at_the_tasks_settings():
    default, _ = bench_student(None, "sst2")
    given, described = bench_student(None, "sst2", LINE)
    assert given.genotype == Genotype.from_summary(LINE) != default.genotype
    assert given.genotype.hash in described
    assert given.config.hidden_size == default.config.hidden_size


def test_a_malformed_line_exits_2_before_timing(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["inference_speed.py", "--genotype", "K=2 | n2: warp(n0)"])
    assert main() == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --genotype:") and "\n" not in err


def test_no_genotype_keeps_the_bench_genotype():
    student, described = bench_student(None, "sst2", None)
    assert "random weights" in described and student.genotype.num_cells >= 1
    with pytest.raises(ValueError):
        bench_student(None, "sst2", "K=x")


def test_a_width_times_the_cells_at_that_width():
    narrow, described = bench_student(None, "sst2", LINE, hidden_size=64)
    wide, _ = bench_student(None, "sst2", LINE)
    assert narrow.config.hidden_size == 64 != wide.config.hidden_size
    assert "width 64" in described and narrow.genotype == wide.genotype
    assert narrow.flops(128) < wide.flops(128) / 3  # convolutions cost the width squared

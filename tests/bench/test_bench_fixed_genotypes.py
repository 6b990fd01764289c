"""bench/fixed_genotypes.py: the genotypes it retrains are the ones named."""

from __future__ import annotations

import json
from pathlib import Path

from fixed_genotypes import CELLS, genotype, searched_genotypes

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_named_cells_have_the_asked_depth_and_ops():
    pool = genotype("pool:4")
    assert pool.num_cells == 4
    assert sorted(pool.edge_ops().values()) == sorted(op for op, _, _ in CELLS["pool"])


def test_a_benchmarks_search_seeds_are_read_back_with_their_hashes(tmp_path):
    report = json.loads((RESULTS / "mrpc" / "bench.json").read_text())
    records = report["tasks"][0]["seeds"]
    found = searched_genotypes(RESULTS / "mrpc" / "bench.json")
    assert list(found) == [f"seed-{r['seed']}" for r in records]
    assert [g.hash for g in found.values()] == [r["genotype_hash"] for r in records]
    empty = tmp_path / "bench.json"
    empty.write_text(json.dumps({"tasks": [{"task": "rte", "status": "failed"}]}))
    assert searched_genotypes(empty) == {}


def test_a_summary_line_names_that_exact_genotype():
    searched = next(iter(searched_genotypes(RESULTS / "mrpc" / "bench.json").values()))
    assert genotype(searched.summary()) == searched
    assert genotype("  " + searched.summary()).hash == searched.hash

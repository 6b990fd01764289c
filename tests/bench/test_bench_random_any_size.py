"""The random genotype of any size: one architecture per seed drawn over the whole search space,
never the searched one, the same draw for the same seed."""

from __future__ import annotations

import torch
from bench_baselines import random_genotype_any_size, random_genotype_like

from searchspace.config import SupernetConfig
from searchspace.costs import genotype_cost
from searchspace.genotype import derive_genotype


def _config() -> SupernetConfig:
    return SupernetConfig(vocab_size=50, hidden_size=16, max_cells=4)


def _searched(config: SupernetConfig):
    return derive_genotype(
        torch.zeros(config.num_edges, len(config.primitives)),
        torch.tensor([0.0, 0.0, 0.0, 5.0]),
        config,
        exclude_zero=True,
    )


def test_a_seed_gives_the_same_draw_and_another_seed_another():
    config = _config()
    searched = _searched(config)
    draws = [
        random_genotype_any_size(config, seed=s, exclude_zero=True, avoid=searched).hash
        for s in (7, 7, 8)
    ]
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]


def test_draws_cover_the_space_whatever_their_cost():
    config = _config()
    searched = _searched(config)
    draws = [
        random_genotype_any_size(config, seed=s, exclude_zero=True, avoid=searched)
        for s in range(40)
    ]
    # Every depth from 1 to max_cells: the number of cells is drawn, not matched.
    assert {g.num_cells for g in draws} == {1, 2, 3, 4}
    params = {genotype_cost(config, g, 32).params for g in draws}
    assert len(params) > 10
    assert all("zero" not in g.summary() for g in draws)


def test_never_the_searched_genotype():
    config = _config()
    first = random_genotype_any_size(config, seed=3, exclude_zero=True, avoid=_searched(config))
    # Avoiding the very genotype seed 3 draws first makes it draw again.
    again = random_genotype_any_size(config, seed=3, exclude_zero=True, avoid=first)
    assert again.hash != first.hash


def test_unlike_the_size_matched_control_it_ignores_the_searched_size():
    config = _config()
    searched = _searched(config)
    matched, _ = random_genotype_like(
        config, searched, seq_len=32, samples=200, seed=1, exclude_zero=True
    )
    target = genotype_cost(config, searched, 32).params
    gaps = [
        abs(
            genotype_cost(
                config,
                random_genotype_any_size(config, seed=s, exclude_zero=True, avoid=searched),
                32,
            ).params
            - target
        )
        for s in range(20)
    ]
    assert abs(genotype_cost(config, matched, 32).params - target) <= min(gaps)
    assert max(gaps) > 0

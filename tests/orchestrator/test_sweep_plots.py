"""The pictures logged to MLflow: the cell diagram's edge labels never overlap one another, it
has a legend and the stack of K cells; the Pareto plot labels every trial and keeps trivial
differences small on its axes."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest

from orchestrator.plots import cell_figure, pareto_figure
from searchspace.genotype import Edge, Genotype, edge_list
from searchspace.primitives import PRIMITIVES


def _genotypes(count: int) -> list[Genotype]:
    rng = random.Random(0)
    genotypes = []
    for _ in range(count):
        edges = []
        for target in range(2, 5):
            sources = [s for s, t in edge_list(3) if t == target]
            for source in rng.sample(sources, 2):
                edges.append(Edge(target, source, rng.choice(PRIMITIVES[:-1])))
        genotypes.append(Genotype(tuple(edges), rng.randint(1, 8), 3))
    return genotypes


@pytest.mark.parametrize("genotype", _genotypes(30), ids=lambda g: g.hash)
def test_cell_diagram_labels_do_not_overlap(genotype):
    figure = cell_figure(genotype)
    figure.canvas.draw()
    cell, stack = figure.axes
    renderer = figure.canvas.get_renderer()
    ops = set(PRIMITIVES)
    boxes = [t.get_window_extent(renderer) for t in cell.texts if t.get_text() in ops]
    assert len(boxes) == len(genotype.edges)
    for first, second in itertools.combinations(boxes, 2):
        assert not first.overlaps(second), (genotype.summary(), first, second)
    legend = [t.get_text() for t in cell.get_legend().get_texts()]
    assert any("parametrised" in t for t in legend) and any("parameter-free" in t for t in legend)
    cells = [t.get_text() for t in stack.texts if t.get_text().startswith("cell ")]
    assert cells == [f"cell {k}" for k in range(1, genotype.num_cells + 1)]
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_pareto_plot_labels_trials_and_does_not_magnify_tiny_differences():
    rows = [
        SimpleNamespace(label="t00", metric=0.625, params=3_923_747, latency_b1_ms=6.9,
                        state="complete"),
        SimpleNamespace(label="t01", metric=0.624, params=3_923_723, latency_b1_ms=2.9,
                        state="complete"),
        SimpleNamespace(label="t02", metric=0.5, params=3_923_735, latency_b1_ms=None,
                        state="pruned"),
    ]  # fmt: skip
    figure = pareto_figure("sentiment", "dev/accuracy", rows, front=rows[:2])
    params_axes, latency_axes = figure.axes
    labels = {t.get_text() for t in params_axes.texts}
    assert {"t00", "t01", "t02"} <= labels
    low, high = params_axes.get_xlim()
    assert high - low >= 0.1 * 3_923_747  # 24 parameters apart must not fill the axis
    low, high = latency_axes.get_ylim()
    assert high - low >= 0.1

"""Pictures for the tracking UI: the derived cell of a genotype, and a task's Pareto plots.

Matplotlib with the Agg backend (no screen on workers); figures are returned, never shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from searchspace.genotype import Genotype
from searchspace.primitives import PARAMETER_FREE


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def cell_figure(genotype: Genotype):
    """The shared cell as a DAG: inputs c_{k-2}, c_{k-1}, inner nodes, the attentive output."""
    plt = _pyplot()
    nodes = genotype.nodes_per_cell
    figure, axes = plt.subplots(figsize=(2.6 * (nodes + 2), 3.6))
    position = {0: (0.0, 1.0), 1: (0.0, -1.0)}
    for index in range(nodes):
        position[2 + index] = (1.5 * (index + 1), 0.9 if index % 2 == 0 else -0.9)
    output = (1.5 * (nodes + 1), 0.0)
    labels = {0: "c_{k-2}", 1: "c_{k-1}"} | {2 + i: f"n{2 + i}" for i in range(nodes)}
    for edge in genotype.edges:
        (x0, y0), (x1, y1) = position[edge.source], position[edge.target]
        colour = "tab:gray" if edge.op in PARAMETER_FREE else "tab:blue"
        axes.annotate(
            "", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "->", "color": colour}
        )
        # A third of the way from the source: crossing edges share their midpoints.
        label_at = (x0 + (x1 - x0) / 3, y0 + (y1 - y0) / 3)
        axes.text(*label_at, edge.op, fontsize=8, color=colour, ha="center", va="bottom")
    for index in range(2, 2 + nodes):
        x, y = position[index]
        axes.annotate(
            "",
            xy=output,
            xytext=(x, y),
            arrowprops={"arrowstyle": "->", "color": "tab:green", "linestyle": "dotted"},
        )
    for index, (x, y) in position.items():
        axes.text(x, y, labels[index], ha="center", va="center", bbox={"boxstyle": "round"})
    axes.text(*output, "attentive\noutput", ha="center", va="center", bbox={"boxstyle": "round"})
    axes.set_title(f"{genotype.hash}: K = {genotype.num_cells} cells sharing this cell")
    axes.set_xlim(-0.7, output[0] + 0.9)
    axes.set_ylim(-1.6, 1.6)
    axes.axis("off")
    figure.tight_layout()
    return figure


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated when maximising the first value and minimising the
    second; ties keep every tied point."""
    front = []
    for i, (score, cost) in enumerate(points):
        dominated = any(
            (other_score >= score and other_cost <= cost)
            and (other_score > score or other_cost < cost)
            for j, (other_score, other_cost) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def pareto_figure(task: str, metric: str, rows: Sequence, *, front: Sequence):
    """One panel per cost (params, latency b1): complete trials labelled by trial number, the
    Pareto front joined in red, trials stopped early greyed at their last reported values."""
    plt = _pyplot()
    costs = {"params": "params", "latency b1 (ms)": "latency_b1_ms"}
    figure, panels = plt.subplots(1, len(costs), figsize=(5.2 * len(costs), 4.0), squeeze=False)
    on_front = {id(row) for row in front}
    for axes, (name, attribute) in zip(panels[0], costs.items()):
        drawn = []
        for row in rows:
            value = getattr(row, attribute)
            if row.metric is None or value is None:
                continue
            complete = row.state == "complete"
            colour = "tab:red" if id(row) in on_front else ("tab:blue" if complete else "0.75")
            axes.scatter([value], [row.metric], color=colour, marker="o" if complete else "x")
            axes.annotate(
                row.label,
                (value, row.metric),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
                color="black" if complete else "0.6",
            )
            drawn.append(value)
        line = sorted(
            (getattr(r, attribute), r.metric) for r in front if getattr(r, attribute) is not None
        )
        if line:
            axes.plot(*zip(*line), "-", color="tab:red", label="Pareto front")
        axes.scatter([], [], color="tab:blue", label="complete")
        axes.scatter([], [], color="0.75", marker="x", label="stopped early (last values)")
        axes.set_xlabel(name)
        axes.set_ylabel(metric)
        # Log scale only when costs span more than a decade; otherwise its ticks are unreadable.
        positive = [v for v in drawn if v > 0]
        if positive and max(positive) / min(positive) > 10:
            axes.set_xscale("log")
        else:
            axes.ticklabel_format(axis="x", style="plain", useOffset=False)
            axes.xaxis.set_major_locator(plt.MaxNLocator(nbins=4))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle(f"{task}: {metric} against cost")
    figure.tight_layout()
    return figure

"""Pictures for run folders and the tracking UI: the derived cell of a genotype, and a task's
Pareto plots.

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


PARAMETRISED_COLOUR, FREE_COLOUR, OUTPUT_COLOUR = "tab:blue", "0.45", "tab:green"


def cell_figure(genotype: Genotype):
    """Left: the shared cell as a DAG (inputs c_{k-2}, c_{k-1}, inner nodes, the attentive
    output), edges coloured by parametrised or parameter-free op, labels on white boxes spread
    along their edges. Right: the stack of K cells between the embedding and the head."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    nodes = genotype.nodes_per_cell
    figure, (axes, stack) = plt.subplots(
        1, 2, figsize=(2.4 * (nodes + 2) + 2.6, 4.4), gridspec_kw={"width_ratios": [nodes + 2, 1.3]}
    )
    # Inner nodes on alternating heights that shrink towards the output: no straight edge
    # runs through a node, and edges into one node arrive from different directions.
    position = {0: (0.0, 1.0), 1: (0.0, -1.0)}
    for index in range(nodes):
        height = 1.3 - 0.35 * index
        position[2 + index] = (1.7 * (index + 1), height if index % 2 == 0 else -height)
    output = (1.7 * (nodes + 1), 0.0)
    labels = {0: "c_{k-2}", 1: "c_{k-1}"} | {2 + i: f"n{2 + i}" for i in range(nodes)}
    rank: dict[int, int] = {}
    for edge in genotype.edges:
        (x0, y0), (x1, y1) = position[edge.source], position[edge.target]
        order = rank[edge.target] = rank.get(edge.target, -1) + 1
        colour = FREE_COLOUR if edge.op in PARAMETER_FREE else PARAMETRISED_COLOUR
        axes.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.6, "shrinkA": 14,
                        "shrinkB": 14},
        )  # fmt: skip
        # Near the target: the edges into a node come from different directions, so their
        # labels part (edges out of one source would share their labels near it); a node's
        # second edge puts its label further back in case both arrive at one angle.
        fraction = 0.72 - 0.22 * (order % 2)
        label_at = (x0 + (x1 - x0) * fraction, y0 + (y1 - y0) * fraction)
        axes.text(
            *label_at, edge.op, fontsize=9, color=colour, ha="center", va="center",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
        )  # fmt: skip
    for index in range(2, 2 + nodes):
        axes.annotate(
            "",
            xy=output,
            xytext=position[index],
            arrowprops={"arrowstyle": "-|>", "color": OUTPUT_COLOUR, "linestyle": "dotted",
                        "shrinkA": 14, "shrinkB": 22},
        )  # fmt: skip
    for index, (x, y) in position.items():
        axes.text(x, y, labels[index], ha="center", va="center", fontsize=11,
                  bbox={"boxstyle": "round", "facecolor": "0.93"})  # fmt: skip
    axes.text(*output, "attentive\noutput", ha="center", va="center", fontsize=10,
              bbox={"boxstyle": "round", "facecolor": "0.93"})  # fmt: skip
    axes.legend(
        handles=[
            Line2D([], [], color=PARAMETRISED_COLOUR, lw=2, label="parametrised (convolution)"),
            Line2D([], [], color=FREE_COLOUR, lw=2, label="parameter-free (pool, identity)"),
            Line2D([], [], color=OUTPUT_COLOUR, lw=2, ls="dotted", label="into the output"),
        ],
        loc="lower center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        fontsize=9,
        frameon=False,
    )
    axes.set_title(f"the cell of genotype {genotype.hash}", fontsize=11)
    axes.set_xlim(-0.8, output[0] + 0.9)
    axes.set_ylim(-1.8, 1.8)
    axes.axis("off")
    _draw_stack(stack, genotype.num_cells)
    figure.tight_layout()
    return figure


def _draw_stack(axes, cells: int) -> None:
    """embedding -> cell 1 .. cell K (each fed by the two before it) -> head."""
    boxes = ["embedding"] + [f"cell {k}" for k in range(1, cells + 1)] + ["head"]
    step = 1.0
    for index, name in enumerate(boxes):
        y = -index * step
        face = "0.93" if name.startswith("cell") else "white"
        axes.text(0, y, name, ha="center", va="center", fontsize=9,
                  bbox={"boxstyle": "round", "facecolor": face})  # fmt: skip
        if index:
            axes.annotate("", xy=(0, y + 0.3), xytext=(0, y + step - 0.3),
                          arrowprops={"arrowstyle": "-|>", "color": "0.3"})  # fmt: skip
    axes.set_title(f"K = {cells} cells, one topology", fontsize=11)
    axes.set_xlim(-1, 1)
    axes.set_ylim(-(len(boxes) - 1) * step - 0.6, 0.6)
    axes.axis("off")


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
            if drawn:
                axes.set_xlim(*_at_least(min(drawn), max(drawn), 0.1 * max(map(abs, drawn))))
        scores = [row.metric for row in rows if row.metric is not None]
        if scores:
            axes.set_ylim(*_at_least(min(scores), max(scores), 0.1))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle(f"{task}: {metric} against cost")
    figure.tight_layout()
    return figure


def _at_least(low: float, high: float, span: float) -> tuple[float, float]:
    """Axis limits around [low, high] at least ``span`` wide: 24 parameters out of 3.9M, or
    0.002 of accuracy, must not fill a whole axis."""
    middle, half = (low + high) / 2, max(high - low, span) / 2
    return middle - half * 1.1, middle + half * 1.1

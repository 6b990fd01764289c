"""What a sweep tells its user at the end: the champion student per task, every trial, and where
the wall time went. Built from the typed records, for the console and ``summary.md``."""

from __future__ import annotations

from orchestrator.sweep.records import TaskSummary


def covered_seconds(intervals) -> float:
    """Length of the union of [start, end] intervals (time some trial or preparation worked)."""
    total, end = 0.0, None
    for start, stop in sorted((a, b) for a, b in intervals if a is not None and b is not None):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def overhead_breakdown(intervals, started: float, ended: float) -> dict:
    """Where the time outside trial work went: before the first work began (Ray start-up,
    stores), in gaps between work, and after the last work ended (final timing, Pareto plots,
    model registry, Ray shutdown)."""
    spans = [(a, b) for a, b in intervals if a is not None and b is not None]
    if not spans:
        return {"startup": ended - started, "gaps": 0.0, "wrap_up": 0.0}
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    gaps = (last - first) - covered_seconds(spans)
    return {"startup": first - started, "gaps": gaps, "wrap_up": ended - last}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1f}x"


def summary_table(summaries: list[TaskSummary]) -> str:
    lines = [
        "| task | metric | teacher | champion | retention | params | size vs teacher | "
        "latency b1 (ms) | speedup b1 | speedup b32 | speedup b1, equal text | "
        "trials (done/pruned/failed) | genotype |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for s in summaries:
        best, teacher = s.best, s.teacher_score
        counts = "/".join(str(n) for n in s.counts().values())
        if best is None:
            lines.append(f"| {s.task} | {s.metric_name} | {_fmt(teacher, '.4f')} | - | - | - | "
                         f"- | - | - | - | - | {counts} | - |")  # fmt: skip
            continue
        latency = best.final_latency
        retention = best.metric / teacher if teacher else None
        lines.append(
            f"| {s.task} | {s.metric_name} | {_fmt(teacher, '.4f')} | {best.metric:.4f} | "
            f"{_fmt(retention, '.3f')} | {best.params / 1e6:.2f}M | "
            f"{s.teacher_params / best.params:.1f}x | "
            f"{_fmt(latency.get('latency/student_b1_ms'), '.2f')} | "
            f"{_times(latency.get('speedup/b1'))} | {_times(latency.get('speedup/b32'))} | "
            # Pair tasks: the student on as much text as the teacher (each sentence at half).
            f"{_times(latency.get('speedup/b1_equal_text'))} | "
            f"{counts} | `{best.genotype_hash}` |"
        )
    return "\n".join(lines)


def trials_table(summaries: list[TaskSummary]) -> str:
    """Every trial of every task: what Optuna tried and what came of it."""
    lines = [
        "| task | trial | state | metric | params | latency b1 (ms) | K_max → K | β | γ | "
        "epochs | genotype |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for s in summaries:
        best = s.best
        for t in s.trials:
            marks = " (champion)" if t is best else ""
            marks += " (front)" if t.number in s.pareto else ""
            cells = f"{_fmt(t.max_cells, 'd')} → {_fmt(t.num_cells, 'd')}"
            params = "-" if t.params is None else f"{t.params:,.0f}"
            genotype = f"`{t.genotype_hash}`" if t.genotype_hash else "-"
            state = f"{t.state} (constant)" if t.degenerate else t.state
            state += " (search undecided)" if t.undecided else ""
            state += " (over the FLOPs budget)" if t.over_budget else ""
            lines.append(
                f"| {s.task} | {t.label}{marks} | {state} | {_fmt(t.metric, '.4f')} | {params} "
                f"| {_fmt(t.latency_b1_ms, '.2f')} | {cells} | {_fmt(t.efficiency_weight, '.2f')} "
                f"| {_fmt(t.kd_weight, '.2f')} | {t.epochs} | {genotype} |"
            )
    return "\n".join(lines)


def warnings_for(summaries: list[TaskSummary]) -> list[str]:
    """One line per task whose finished students all failed the constant-prediction check, or
    whose champion's genotype came from a search that did not decide (almost uniform α)."""
    lines = []
    for s in summaries:
        finished = [t for t in s.trials if t.state == "complete"]
        if finished and s.best is None:
            why = "beat a constant prediction of the dev set"
            if any(t.over_budget for t in finished):
                why += " within search.max_student_flops"
            lines.append(
                f"task {s.task}: no finished student {why} ({len(finished)} finished); none is "
                f"named champion or registered"
            )
        elif s.best is not None and s.best.undecided:
            lines.append(
                f"task {s.task}: the champion's search did not decide (its α stayed close to "
                f"uniform), so its genotype is close to a random pick; give the search more "
                f"steps or a larger search.arch_lr"
            )
    return lines

"""The GLUE benchmark's report: bench.md (Markdown tables) and bench.json; on the command line,
``--summary DIR`` writes DIR/summary.json from every DIR/<task>/bench.json (bench_summary.py);
``--render DIR...`` writes each DIR/bench.md again from DIR/bench.json (after a report change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench_summary import CONTROLS, control_figure, mean_std, write_summary

# The targets (a benchmark reports against them; nothing fails when they are missed).
# Issue 10's targets. Retention = searched mean / teacher (for CoLA, of the MCC).
RETENTION_TARGET = {"sst2": 0.97, "mrpc": 0.97, "rte": 0.90, "stsb": 0.90, "cola": 0.50}
OWN_TASK_RETENTION_TARGET = 0.90  # any task of a user's own (run_bench.py --own)
SIZE_TARGET = 20.0  # BERT-base params / searched student params
SPEEDUP_TARGET = 100.0  # BERT-base latency / searched student latency, batch 1


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def _f(value: float | None, digits: int = 3, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def _m(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value / 1e6:.{digits}f}"


def _used(data: dict[str, int], split: str) -> str:
    used, available = data[f"{split}_examples"], data[f"{split}_available"]
    return f"{used:,}" if used == available else f"{used:,} of {available:,}"


def _ok(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "**no**")


def markdown(report: dict[str, Any]) -> str:
    done = [r for r in report["tasks"] if r["status"] == "done"]
    own_configs = report.get("own_configs", {})  # absent in files before --own
    failed = [r for r in report["tasks"] if r["status"] != "done"]
    finished = {r["task"] for r in report["tasks"]}
    pending = [t for t in report["tasks_requested"] if t not in finished]
    lines = [
        "# AdaBERT benchmark on "
        + ("dev sets" if own_configs else "GLUE dev")
        + (f" (tasks of your own: {', '.join(own_configs)})" if own_configs else ""),
        "",
        f"**Tasks done: {len(done)} of {len(report['tasks_requested'])}** "
        f"({', '.join(r['task'] for r in done) or 'none'})"
        + (f"; failed: {', '.join(r['task'] for r in failed)}" if failed else "")
        + (f"; pending: {', '.join(pending)}" if pending else "")
        + f". Started {report['started']}, updated {report['updated']}"
        + (" (run complete)." if report["complete"] else " (run in progress or interrupted)."),
        "",
        f"Teacher: `{report['teacher']}` fine-tuned per task by the pipeline. "
        f"Machine: {report['machine']['cpus']} CPU cores (shared), torch "
        f"{report['machine']['torch']}, transformers {report['machine']['transformers']}.",
        "",
        "## Results",
        "",
        "Dev-set primary metric. Searched = mean ± population std over the search seeds (the "
        "first seed's student alone when one seed ran); retention = that mean / teacher. "
        "Majority = always predicting the training set's most frequent class. Baselines are "
        "trained with the same KD loss for the same number of optimizer steps as the searched "
        "student (the first seed's), their architecture matched to the first seed's student; "
        "a control given as mean ± std was trained once per search seed, a single figure is "
        "one run with the first seed. "
        "Params, FLOPs and speedups are the searched student's; FLOPs per example at sequence "
        "length 128; speedups are latency ratios from one interleaved run (batch 1 and 32, "
        f"seq 128, {report['headline_threads']}); size ratios are exact parameter-count "
        "ratios.",
        "",
        "| task | train / dev examples | metric | teacher | searched | retention | majority | "
        "random genotype | random, any size | bag of embeddings | BERT-style | params (M) | "
        "FLOPs/ex (M) | size vs teacher | size vs BERT-base | b1 vs teacher | b32 vs teacher | "
        "b1 vs BERT-base | b32 vs BERT-base |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in done:
        metric, ratios = r["metric"], r["ratios"]
        seeds = _seed_spread(r)
        retention = ratios.get("retention_seed_mean", ratios["retention"])
        lines.append(
            f"| {r['task']} | {_used(r['data'], 'train')} / {_used(r['data'], 'dev')} | "
            f"{metric} | {_f(r['teacher']['metrics'].get(metric))} | "
            f"{_f(seeds['mean'])}"
            + (
                f" ± {_f(seeds['std'])} ({len(seeds['values'])} seeds)"
                if len(seeds["values"]) > 1
                else ""
            )
            + f" | {_f(_pct(retention), 1, '%')} | "
            f"{_f((r.get('majority_baseline') or {}).get('score'))} | "
            + "".join(f"{control_text(r, name)} | " for name in CONTROLS)
            + f"{_m(r['searched']['params'])} | "
            f"{_m(r['searched']['flops'], 1)} | {_f(ratios['size_vs_teacher'], 1, 'x')} | "
            f"{_f(ratios['size_vs_bert_base'], 1, 'x')} | "
            f"{_f(ratios['speedup_b1_vs_teacher'], 1, 'x')} | "
            f"{_f(ratios['speedup_b32_vs_teacher'], 1, 'x')} | "
            f"{_f(ratios['speedup_b1_vs_bert_base'], 1, 'x')} | "
            f"{_f(ratios['speedup_b32_vs_bert_base'], 1, 'x')} |"
        )
    lines += [
        "",
        "## Targets",
        "",
        "| task | retention ≥ 97% (SST-2, MRPC), 90% (RTE, STS-B, yours), 50% (CoLA) | "
        f"≥ {SIZE_TARGET:.0f}x smaller than BERT-base | "
        f"≥ {SPEEDUP_TARGET:.0f}x faster than BERT-base at batch 1 | "
        "searched beats random genotype | searched beats random, any size | "
        "searched beats bag of embeddings |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in done:
        metric, ratios = r["metric"], r["ratios"]
        retention_target = (
            OWN_TASK_RETENTION_TARGET
            if r["task"] in own_configs
            else RETENTION_TARGET.get(r["task"])
        )
        retention = ratios.get("retention_seed_mean", ratios["retention"])
        searched_score = _seed_spread(r)["mean"]
        random_score, _ = control_figure(r["random_genotype"], metric)
        floor_score, _ = control_figure(r.get("bag_of_embeddings"), metric)
        any_size_score, _ = control_figure(r.get("random_any_size"), metric)
        lines.append(
            f"| {r['task']} | "
            + (
                f"{_ok(retention >= retention_target)} ({_f(_pct(retention), 1, '%')})"
                if retention_target and retention is not None
                else "n/a"
            )
            + f" | {_ok(ratios['size_vs_bert_base'] >= SIZE_TARGET)} "
            f"({_f(ratios['size_vs_bert_base'], 1, 'x')}) | "
            f"{_ok(ratios['speedup_b1_vs_bert_base'] >= SPEEDUP_TARGET)} "
            f"({_f(ratios['speedup_b1_vs_bert_base'], 1, 'x')}"
            + (
                f"; equal text {_f(ratios['speedup_b1_vs_bert_base_equal_text'], 1, 'x')}"
                if "speedup_b1_vs_bert_base_equal_text" in ratios
                else ""
            )
            + ") | "
            f"{_beats(searched_score, random_score)} | {_beats(searched_score, any_size_score)} | "
            f"{_beats(searched_score, floor_score)} |"
        )
    lines += [
        "",
        "## Students and baselines",
        "",
        "Every student is trained with (1 - γ)·CE + γ·KD on the teacher's final logits "
        "(`run_retrain`; the searched one also by the search before it); steps = optimizer "
        "steps on its weights, best dev epoch kept. The random genotype is the closest in exact "
        "parameter count among seeded random draws, trained from scratch with the teacher's "
        "PCA-projected embeddings; the random genotype of any size is drawn over the whole "
        "search space, one architecture per seed, and trained the same way; the bag of "
        "embeddings is the students' embedding layer, a "
        "masked mean over real tokens and a linear layer ([u, v, |u - v|, u * v] for pairs), "
        "embeddings initialised the same way; the BERT-style student, the candidate shape "
        "closest to the searched student in batch-1 latency (table below), reads the teacher's "
        "joint pair encoding, its embeddings initialised the same way. Best epoch of the "
        "searched student: search epoch / retrain epoch (0 = the derived student before "
        "retraining).",
        "",
        "| task | model | dev metrics | params (M) | FLOPs/ex (M) | steps | lr | best epoch | "
        "architecture |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in done:
        for name, part, steps, lr, best, arch in _model_rows(r):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in part.get("metrics", {}).items())
            lines.append(
                f"| {r['task']} | {name} | {shown or '-'} | {_m(part['params'])} | "
                f"{_m(part['flops'], 1)} | {steps} | {lr} | {best} | {arch} |"
            )
    lines += [
        "",
        "## Latency (ms)",
        "",
        "Median of `run.latency_repeats` forward passes after 2 warm-up passes, CPU, "
        "full-length random inputs at sequence 128, every model interleaved per batch size "
        "in one process (the machine is shared: compare within a row, not across runs). "
        "The CNN students embed the two sentences separately (2 x 128 tokens); the "
        "transformers read one joint 128-token sequence.",
        "",
        "Torch threads per row: `bench.latency_threads` (0 = torch's default); on a loaded "
        "machine, more threads than free cores slow small models down most.",
        "",
        "| task | torch threads | batch | searched | random genotype | bag of embeddings | "
        "BERT-style | teacher | BERT-base | load avg |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    timed = ("searched", "random", "bag_of_embeddings", "bert_style", "teacher", "bert_base")
    for r in done:
        for run in r["latency_meta"]["runs"]:
            ms = r["latency_ms"][run["label"]]
            for batch in (1, 32):
                cells = " | ".join(_f(ms.get(f"{name}_b{batch}"), 2) for name in timed)
                lines.append(
                    f"| {r['task']} | {run['threads']} | {batch} | {cells} | "
                    f"{run['load_average_before']:.1f} |"
                )
    lines += equal_text_lines(done)
    lines += [
        "",
        "## Phase wall times (s)",
        "",
        "data = read + tokenise; teacher = fine-tune + probes + knowledge (≈ 0 on a cache hit); "
        "search and retrain = the searched student, summed over the seeds; then the baselines "
        "(BERT-style includes timing its candidate shapes); latency = loading, timing and "
        "counting FLOPs.",
        "",
        "| task | data | teacher | cache hit | search | retrain | random genotype | "
        "bag of embeddings | BERT-style | latency | total |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    phase_keys = ("search", "retrain", "baseline_random", "baseline_floor", "baseline_bert")
    for r in done:
        ps = r["phase_seconds"]
        cells = " | ".join(_f(ps.get(k), 0) for k in phase_keys)
        lines.append(
            f"| {r['task']} | {_f(ps.get('data'), 0)} | {_f(ps.get('teacher'), 0)} | "
            f"{'yes' if r['teacher']['cache_hit'] else 'no'} | {cells} | "
            f"{_f(ps.get('latency'), 0)} | {_f(ps.get('total'), 0)} |"
        )
    lines += _bert_pick_lines(done)
    lines += ["", "## Searched genotypes", ""]
    for r in done:
        for s in r.get("seeds") or [r["searched"]]:
            seed = f" seed {s['seed']}" if "seed" in s else ""
            score = s["metrics"].get(r["metric"])
            share = s.get("search_entropy_share")  # absent from bench.json of older code
            decided = "" if share is None else f"; α entropy {share:.1%} of uniform's"
            lines.append(
                f"- **{r['task']}**{seed} `{s['genotype_hash']}` (dev {_f(score)}; search best "
                f"epoch {_f(s['search_best_epoch'], 0)}, dev {_f(s['search_best_dev'])} as a "
                f"supernet sub-network{decided}): `{s['genotype_summary']}`"
            )
    for r in failed:
        lines += ["", f"## {r['task']} failed", "", "```", r["error"].rstrip(), "```"]
    lines += [
        "",
        "## Command",
        "",
        "```",
        report["command"],
        "```",
        "",
        "## Config",
        "",
        "Each task's config is bench.toml, then its `[tasks.<name>]` table, then the `--set` "
        "overrides, then `task.name` and `task.data_dir`; a task of your own (`--own FILE`) is "
        "bench.toml, then FILE, then the `--set` overrides"
        + "".join(f"; `{task}` from `{path}`" for task, path in own_configs.items())
        + ". Bench-only settings: "
        f"`{json.dumps(report['bench_options'])}`.",
        "",
        f"bench.toml (`{report['config_path']}`):",
        "",
        "```toml",
        report["config_text"].rstrip(),
        "```",
        "",
        "`--set` overrides: "
        + (", ".join(f"`{s}`" for s in report["overrides"]) if report["overrides"] else "none"),
    ]
    for r in done:
        lines += [
            "",
            f"<details><summary>{r['task']}: resolved config</summary>",
            "",
            "```json",
            json.dumps(r["config"], indent=1, sort_keys=True),
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _model_rows(r: dict[str, Any]) -> list[tuple]:
    """(name, part of the task's result, steps, learning rate, best epoch, architecture)."""
    cfg, searched = r["config"], r["searched"]
    rand, bert = r["random_genotype"], r["bert_style"]
    steps = searched["steps"]
    return [
        (
            "teacher",
            r["teacher"],
            "-",
            cfg["teacher"]["learning_rate"],
            "-",
            f"`{cfg['teacher']['name_or_path']}`, fine-tuned",
        ),
        (
            "searched",
            searched,
            f"{steps['search']:,} + {steps['retrain']:,}",
            cfg["retrain"]["learning_rate"],
            f"{_f(searched['search_best_epoch'], 0)} / {_f(searched['retrain_best_epoch'], 0)}",
            _code(searched["genotype_summary"]),
        ),
        (
            "random genotype",
            rand,
            f"{rand['steps']:,}",
            rand["retrain"]["learning_rate"],
            rand["best_epoch"],
            _code(rand["genotype_summary"]),
        ),
        *_any_size_rows(r),
        *_floor_row(r),
        (
            "BERT-style",
            bert,
            f"{bert['steps']:,}",
            bert["retrain"]["learning_rate"],
            bert["best_epoch"],
            _bert_shape(bert["architecture"]),
        ),
        ("BERT-base (random weights)", r["bert_base"], "-", "-", "-", "12 x 768, 12 heads"),
    ]


def _any_size_rows(r: dict[str, Any]) -> list[tuple]:
    """One row per seed: each seed drew its own architecture (``random_any_size``)."""
    record = r.get("random_any_size")
    if not record:  # switched off, or bench.json from before the control existed
        return []
    return [
        (
            f"random, any size (seed {draw['seed']})",
            draw,
            f"{record['steps']:,}",
            record["retrain"]["learning_rate"],
            draw["best_epoch"],
            _code(draw["genotype_summary"]),
        )
        for draw in record["by_seed"]
    ]


def _floor_row(r: dict[str, Any]) -> list[tuple]:
    floor = r.get("bag_of_embeddings")
    if floor is None:  # bench.json from before the floor existed
        return []
    return [
        (
            "bag of embeddings",
            floor,
            f"{floor['steps']:,}",
            floor["retrain"]["learning_rate"],
            floor["best_epoch"],
            _code(f"embedding -> masked mean -> linear on {floor['features']}"),
        )
    ]


def _bert_pick_lines(done: list[dict[str, Any]]) -> list[str]:
    """The BERT-style candidates' batch-1 latencies and the one picked, per task."""
    picks = [r for r in done if "choice" in r["bert_style"]]
    if not picks:
        return []
    lines = [
        "",
        "## BERT-style shape, picked by latency",
        "",
        "Each candidate (random weights) timed at batch 1 against the first seed's searched "
        "student in one process; the closest latency is trained.",
        "",
        "| task | searched b1 (ms) | candidate | heads | params (M) | b1 (ms) | picked |",
        "| --- | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in picks:
        choice = r["bert_style"]["choice"]
        for c in choice["candidates"]:
            label = f"{c['layers']}x{c['width']}"
            lines.append(
                f"| {r['task']} | {_f(choice['target_ms'], 2)} | {label} | {c['heads']} | "
                f"{_m(c['params'])} | {_f(c['latency_b1_ms'], 2)} | "
                f"{'**yes**' if label == choice['chosen'] else ''} |"
            )
    return lines


def _seed_spread(r: dict[str, Any]) -> dict[str, Any]:
    """The searched student's primary metric over its seeds (the one searched student of a
    bench.json from before seeds)."""
    metric = r["metric"]
    records = r.get("seeds") or [r["searched"]]
    return mean_std([s["metrics"].get(metric) for s in records])


def equal_text_lines(done: list[dict[str, Any]]) -> list[str]:
    """Pair tasks: the searched student timed on the transformers' text (each sentence at half
    the sequence length), in the same interleaved run as the table above. The ratios are the
    ones run_bench stored (``ratios["speedups_by_threads"]``), not recomputed here."""
    rows = []
    for r in done:
        half = r["latency_meta"]["seq_len"] // 2
        by_threads = r["ratios"].get("speedups_by_threads", {})
        for run in r["latency_meta"]["runs"]:
            ms, ratios = r["latency_ms"][run["label"]], by_threads.get(run["label"], {})
            if "searched_equal_text_b1" not in ms:
                continue
            for batch in (1, 32):
                vs = [
                    ratios.get(f"speedup_b{batch}_vs_{o}_equal_text")
                    for o in ("teacher", "bert_base")
                ]
                rows.append(
                    f"| {r['task']} | 2 x {half} | {run['threads']} | {batch} | "
                    f"{_f(ms[f'searched_equal_text_b{batch}'], 2)} | "
                    f"{_f(vs[0], 1, 'x')} | {_f(vs[1], 1, 'x')} |"
                )
    if not rows:
        return []
    return [
        "",
        "Pair tasks on equal text: the searched student with each sentence at half the sequence "
        "length, as much text as the transformers' joint sequence (same run, same models).",
        "",
        "| task | student tokens | torch threads | batch | searched, equal text (ms) "
        "| vs teacher | vs BERT-base |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def control_text(r: dict[str, Any], name: str) -> str:
    """A control's figure: mean ± std (n seeds) when it was trained with several seeds."""
    record, metric = r.get(name), r["metric"]
    mean, std = control_figure(record, metric)
    text = _f(mean)
    if std is not None:
        text += f" ± {_f(std)} ({len(record['over_seeds']['values'])} seeds)"
    return text


def _beats(score: float | None, other: float | None) -> str:
    if score is None or other is None:
        return "-"
    return f"{_ok(score > other)} ({_f(score)} vs {_f(other)})"


def _code(text: str) -> str:
    """Inline code inside a table cell: GitHub reads ``\\|`` as a literal pipe there too."""
    return "`" + text.replace("|", "\\|") + "`"


def _pct(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


def _bert_shape(arch: dict[str, int]) -> str:
    return (
        f"{arch['num_hidden_layers']} x {arch['hidden_size']}, "
        f"{arch['num_attention_heads']} heads, FFN {arch['intermediate_size']}"
    )


def write_report(out: Path, report: dict[str, Any]) -> None:
    report["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
    for name, text in (
        ("bench.json", json.dumps(report, indent=1, default=str) + "\n"),
        ("bench.md", markdown(report)),
    ):
        staging = out / f".{name}.tmp"
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, out / name)


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench_report.py", description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--render",
        nargs="+",
        metavar="DIR",
        help="write DIR/bench.md from DIR/bench.json (bench.json is left as it is)",
    )
    action.add_argument(
        "--summary",
        metavar="DIR",
        help="results folder: reads DIR/<task>/bench.json, writes one row per task",
    )
    parser.add_argument(
        "--summary-out",
        metavar="FILE",
        help="where the summary goes (default: DIR/summary.json)",
    )
    return parser


def render(folders) -> int:
    for folder in folders:
        source = folder / "bench.json"
        if not source.is_file():
            print(f"error: {folder} has no bench.json", file=sys.stderr)
            return 2
        report = json.loads(source.read_text(encoding="utf-8"))
        staging = folder / ".bench.md.tmp"
        staging.write_text(markdown(report), encoding="utf-8")
        os.replace(staging, folder / "bench.md")
        print(folder / "bench.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.render:
        return render(Path(folder) for folder in args.render)
    results = Path(args.summary)
    if not results.is_dir():
        print(f"error: {results} is not a folder", file=sys.stderr)
        return 2
    written = write_summary(results, args.summary_out and Path(args.summary_out))
    print(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())

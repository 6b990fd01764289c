"""Benchmark AdaBERT on real GLUE tasks against a random genotype and a small BERT student.

Usage (from the repository root, after scripts/setup.sh):
    .venv/bin/python bench/run_bench.py --glue-dir ../shared/data/glue --tasks sst2 mrpc \
        --config bench/bench.toml

Per task it runs the same pipeline as ``adabert run`` (search -> derive -> retrain with KD),
then two baselines retrained with the same KD budget: a random genotype of similar parameter
count, and a BERT-style transformer student of similar size. Teacher, students and a BERT-base
architecture with random weights are timed side by side in this process. Writes a Markdown
table and a JSON file to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.batches import batch_loader  # noqa: E402
from orchestrator.config import load_config  # noqa: E402
from orchestrator.data import load_task_data, tokenize_for_distillation  # noqa: E402
from orchestrator.evaluation import evaluate  # noqa: E402
from orchestrator.latency import compare_latency  # noqa: E402
from orchestrator.pipeline import (  # noqa: E402
    _scratch_student,
    _teacher_tables,
    prepare_task,
    run_trial,
    seed_everything,
    supernet_config_for,
)
from orchestrator.retrain import run_retrain  # noqa: E402
from orchestrator.teacher import load_teacher, load_tokenizer, resolve_teacher_reference  # noqa: E402
from searchspace.derived import DerivedStudent  # noqa: E402
from searchspace.genotype import derive_genotype  # noqa: E402


def random_genotype_like(config, target_params: int, *, seed: int, tries: int = 2000):
    """A random genotype whose student has about the same parameter count as the searched one."""
    rng = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(tries):
        edge_logits = torch.randn(config.num_edges, len(config.primitives), generator=rng)
        depth_logits = torch.randn(config.max_cells, generator=rng)
        genotype = derive_genotype(edge_logits, depth_logits, config)
        params = DerivedStudent(config, genotype).num_parameters()
        gap = abs(params - target_params) / target_params
        if best is None or gap < best[0]:
            best = (gap, genotype)
        if gap < 0.03:
            break
    return best[1]


class BertStudent(torch.nn.Module):
    """A small BERT-style transformer student fed the same two-sentence inputs as ours."""

    def __init__(
        self, vocab_size: int, num_labels: int, hidden: int, layers: int, seq: int, is_pair: bool
    ):
        super().__init__()
        self.is_pair = is_pair
        from transformers import BertConfig, BertForSequenceClassification

        self.config_ = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=max(1, hidden // 64),
            intermediate_size=4 * hidden,
            max_position_embeddings=max(512, 2 * seq),
            num_labels=num_labels,
        )
        self.bert = BertForSequenceClassification(self.config_)

    def forward(self, ids_a, mask_a, ids_b, mask_b):
        if not self.is_pair:
            return self.bert(input_ids=ids_a, attention_mask=mask_a).logits
        # Concatenate the two sentences (their [CLS] a [SEP] / [CLS] b [SEP] encodings).
        ids = torch.cat([ids_a, ids_b[:, 1:]], dim=1)
        mask = torch.cat([mask_a, mask_b[:, 1:]], dim=1)
        types = torch.cat([torch.zeros_like(ids_a), torch.ones_like(ids_b[:, 1:])], dim=1)
        return self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).logits

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def bert_base_architecture(num_labels: int):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(num_labels=num_labels))


def retrain_baseline(student, cfg, prepared, *, genotype=None):
    loader = batch_loader(prepared.train, batch_size=cfg.data.batch_size, shuffle=True, seed=7)
    dev = batch_loader(prepared.dev, batch_size=cfg.data.batch_size, shuffle=False, seed=0)
    if genotype is not None:
        student.genotype = genotype
    started = time.perf_counter()
    result = run_retrain(
        student,
        prepared.task,
        train_loader=loader,
        dev_loader=dev,
        cfg=cfg.retrain,
        loss_cfg=cfg.loss,
        primary_metric=prepared.primary_metric,
        progress=False,
    )
    return result.dev_metrics, time.perf_counter() - started


def bench_task(task: str, glue_dir: Path, cfg_path: str | None, overrides: list[str]) -> dict:
    cfg = load_config(
        cfg_path,
        [f'task.name="{task}"', f'task.data_dir="{glue_dir}"', *overrides],
    )
    print(f"== {task}: preparing data and teacher", flush=True)
    prepared = prepare_task(cfg)
    seed_everything(cfg.run.seed)
    print(f"== {task}: search + retrain", flush=True)
    searched = run_trial(cfg, dataclasses.replace(prepared), on_epoch=_print_epoch)
    config = supernet_config_for(cfg, prepared)
    tables = _teacher_tables(prepared, config)
    primary = prepared.primary_metric
    rows = {"searched (inherit + KD)": searched.metrics}

    seed_everything(cfg.run.seed)
    scratch = _scratch_student(config, searched.genotype, tables)
    metrics, seconds = retrain_baseline(scratch, cfg, prepared)
    rows["searched (scratch + KD)"] = {**metrics, "student/params": scratch.num_parameters(),
                                      "student/flops": scratch.flops(cfg.data.max_seq_length),
                                      "time/retrain": seconds}

    target = searched.student.num_parameters()
    genotype = random_genotype_like(config, target, seed=cfg.run.seed)
    seed_everything(cfg.run.seed)
    rand = _scratch_student(config, genotype, tables)
    metrics, seconds = retrain_baseline(rand, cfg, prepared)
    rows["random genotype (scratch + KD)"] = {
        **metrics, "student/params": rand.num_parameters(),
        "student/flops": rand.flops(cfg.data.max_seq_length), "time/retrain": seconds,
        "genotype": genotype.summary()}

    seed_everything(cfg.run.seed)
    bert = BertStudent(config.vocab_size, prepared.task.num_labels, hidden=config.hidden_size,
                       layers=2, seq=cfg.data.max_seq_length, is_pair=prepared.task.is_pair)
    with torch.no_grad():
        bert.bert.bert.embeddings.word_embeddings.weight.copy_(scratch.embedding.word_embeddings.weight)
    metrics, seconds = retrain_baseline(bert, cfg, prepared, genotype=searched.genotype)
    rows["BERT-style student (2x128, KD)"] = {**metrics, "student/params": bert.num_parameters(),
                                              "time/retrain": seconds}

    print(f"== {task}: latency (student, teacher, BERT-base arch, BERT-style student)", flush=True)
    teacher, _ = load_teacher(prepared.teacher_path, num_labels=prepared.task.num_labels,
                              is_regression=prepared.task.is_regression)
    base = bert_base_architecture(prepared.task.num_labels)
    latency = compare_latency(
        {"student": (searched.student, "student"), "teacher": (teacher, "teacher"),
         "bert_base": (base, "teacher"), "bert_student": (bert, "student")},
        vocab_size=min(prepared.vocab_size, config.vocab_size),
        seq_len=cfg.run.latency_seq_length,
        repeats=cfg.run.latency_repeats,
    )
    return {
        "task": task,
        "primary_metric": primary,
        "teacher_metrics": prepared.teacher_metrics,
        "teacher_params": prepared.teacher_params,
        "bert_base_params": sum(p.numel() for p in base.parameters()),
        "genotype": searched.genotype.summary(),
        "genotype_hash": searched.genotype.hash,
        "rows": rows,
        "latency": latency,
        "phase_seconds": searched.phase_seconds,
        "train_examples": len(prepared.train),
        "dev_examples": len(prepared.dev),
        "config": cfg.to_dict(),
    }


def _print_epoch(report) -> None:
    shown = {k: round(v, 4) for k, v in report.metrics.items()
             if k.startswith("dev/") or k in ("train/loss_total", "arch/num_cells")}
    print(f"   {report.phase} {report.epoch}/{report.num_epochs} {shown}", flush=True)


def _fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: list[dict], command: str) -> str:
    lines = [
        "# AdaBERT benchmark on GLUE dev (teacher: all-MiniLM-L6-v2 fine-tuned per task)",
        "",
        f"Command: `{command}`",
        "",
        "| task | model | metric | teacher | student | retention | params | FLOPs/ex | size vs teacher | size vs BERT-base | speedup b1 vs teacher | speedup b1 vs BERT-base | speedup b32 vs BERT-base |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        primary = r["primary_metric"]
        teacher = r["teacher_metrics"][primary.replace("dev/", "teacher/")]
        lat = r["latency"]
        for name, row in r["rows"].items():
            params = row["student/params"]
            key = "student" if name.startswith("searched (inherit") else (
                "bert_student" if name.startswith("BERT") else None)
            b1 = lat.get(f"latency/{key}_b1_ms") if key else None
            b32 = lat.get(f"latency/{key}_b32_ms") if key else None
            lines.append(
                f"| {r['task']} | {name} | {primary} | {_fmt(teacher)} | {_fmt(row[primary])} | "
                f"{_fmt(row[primary] / teacher if teacher else None)} | {params / 1e6:.2f}M | "
                f"{_fmt(row.get('student/flops', 0) / 1e6, 1)}M | "
                f"{r['teacher_params'] / params:.1f}x | {r['bert_base_params'] / params:.1f}x | "
                f"{_fmt(lat['latency/teacher_b1_ms'] / b1 if b1 else None, 1)} | "
                f"{_fmt(lat['latency/bert_base_b1_ms'] / b1 if b1 else None, 1)} | "
                f"{_fmt(lat['latency/bert_base_b32_ms'] / b32 if b32 else None, 1)} |"
            )
    lines += ["", "Latency (ms, median, seq 128, this process, same run):", ""]
    lines.append("| task | student b1 | teacher b1 | BERT-base b1 | BERT-style b1 | student b32 | teacher b32 | BERT-base b32 |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        lat = r["latency"]
        lines.append(
            f"| {r['task']} | {lat['latency/student_b1_ms']:.2f} | {lat['latency/teacher_b1_ms']:.2f} | "
            f"{lat['latency/bert_base_b1_ms']:.2f} | {lat['latency/bert_student_b1_ms']:.2f} | "
            f"{lat['latency/student_b32_ms']:.1f} | {lat['latency/teacher_b32_ms']:.1f} | "
            f"{lat['latency/bert_base_b32_ms']:.1f} |"
        )
    lines += ["", "Data and phase wall times (s):", ""]
    lines.append("| task | train examples | dev examples | data | teacher (fine-tune+probes+knowledge) | search | retrain | genotype |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        ps = r["phase_seconds"]
        lines.append(
            f"| {r['task']} | {r['train_examples']} | {r['dev_examples']} | {ps.get('data', 0):.0f} | "
            f"{ps.get('teacher', 0):.0f} | {ps.get('search', 0):.0f} | {ps.get('retrain', 0):.0f} | "
            f"`{r['genotype']}` |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue-dir", default=str(ROOT.parent / "shared" / "data" / "glue"))
    parser.add_argument("--tasks", nargs="+", default=["sst2", "mrpc", "rte", "cola", "stsb"])
    parser.add_argument("--config", default=str(ROOT / "bench" / "bench.toml"))
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    random.seed(0)
    command = "python bench/run_bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for task in args.tasks:
        results.append(bench_task(task, Path(args.glue_dir), args.config, args.set))
        (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
        (out / "bench.md").write_text(markdown(results, command))
    print(markdown(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())

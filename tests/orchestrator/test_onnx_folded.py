"""The ONNX graph of a student whose cells are all linear (identity / average pooling / zero) is
folded to embedding -> gather of per-length token weights -> one product -> head, and agrees
with the PyTorch student on right-padded inputs of mixed lengths, single sentences and pairs."""

from __future__ import annotations

import onnx
import pytest
import torch

from orchestrator.student.onnx_export import (
    PAIR_INPUTS,
    SINGLE_INPUTS,
    SingleSentence,
    export_graph,
    generated_inputs,
    session,
)
from searchspace import DerivedStudent, Edge, Genotype, SupernetConfig

LINEAR = (Edge(2, 0, "identity"), Edge(2, 1, "avg_pool_3"), Edge(3, 2, "avg_pool_3"),
          Edge(3, 0, "zero"), Edge(4, 3, "avg_pool_3"), Edge(4, 1, "identity"))  # fmt: skip
WITH_CONV = LINEAR[:-1] + (Edge(4, 1, "std_conv_3"),)


def _student(edges, pair_encoding: str) -> DerivedStudent:
    config = SupernetConfig(vocab_size=60, max_positions=40, hidden_size=16, max_cells=3,
                            num_labels=3, dropout=0.0, pair_encoding=pair_encoding)  # fmt: skip
    torch.manual_seed(0)
    student = DerivedStudent(config, Genotype(edges, 3, 3)).eval()
    with torch.no_grad():  # non-uniform architecture weights, so every path counts
        for cell in student.cells:
            cell.output_logits.normal_()
        for logits in student.head.layer_logits.values():
            logits.normal_()
    return student


@pytest.mark.parametrize(
    ("edges", "pair_encoding", "pair", "folded"),
    [(LINEAR, "joint", False, True), (LINEAR, "siamese", True, True),
     (LINEAR, "joint", True, False), (WITH_CONV, "joint", False, False)],
)  # fmt: skip
def test_export_agrees_with_pytorch_and_folds_only_linear_students(
    tmp_path, edges, pair_encoding, pair, folded
):
    student = _student(edges, pair_encoding)
    model = student if pair else SingleSentence(student)
    names = PAIR_INPUTS if pair else SINGLE_INPUTS
    batches = generated_inputs(examples=200, vocab_size=60, max_length=40, batch_size=8, seed=1)
    path = tmp_path / "model.onnx"
    export_graph(model, batches[0][: len(names)], names, path)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert ("AveragePool" not in ops) is folded, sorted(ops)
    runner = session(path, threads=1)
    worst, same = 0.0, 0
    for batch in batches:
        inputs = batch[: len(names)]
        with torch.inference_mode():
            expected = model(*inputs)
        got = torch.from_numpy(runner.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0])
        worst = max(worst, float((got - expected).abs().max()))
        same += int((got.argmax(-1) == expected.argmax(-1)).sum())
    assert same == 200 and worst <= 1e-4, (same, worst)
    assert "_length_table" not in student.__dict__  # only while exporting

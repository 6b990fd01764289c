"""Shared fixtures: a tiny BERT teacher built from a config (no downloads) and generated data.

The teacher's WordPiece vocabulary is the demo generator's vocabulary, so generated text has no
[UNK]; the data is written in the GLUE TSV layout by the project's own generator.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch a hub, and Ray must not create auth tokens or report usage.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_teacher(folder: Path, *, num_labels: int = 2, layers: int = 2) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a tokenizer covering the demo words."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from orchestrator.tasks.demo import vocabulary

    words = SPECIAL_TOKENS + sorted(set(vocabulary()) - set(SPECIAL_TOKENS))
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(words)})
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
        num_labels=num_labels,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"))


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory) -> Path:
    """Generated SST-2 and MRPC in the GLUE TSV layout: root/SST-2, root/MRPC."""
    from orchestrator.tasks.demo import write_glue_layout

    root = tmp_path_factory.mktemp("glue-generated")
    for task in ("sst2", "mrpc"):
        write_glue_layout(root, task, train_size=96, dev_size=48, seed=0)
    return root

"""The transfer set's augmenter: deterministic, label-preserving, pair-respecting, in-vocabulary;
embedding neighbours are the nearest whole words; the cache key follows the settings."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from orchestrator.config import DataSection, TeacherSection, load_config
from orchestrator.tasks.augment import Augmenter, AugmentSettings, split_words, vocabulary_words
from orchestrator.tasks.registry import get_task
from orchestrator.teacher import knowledge
from orchestrator.teacher.neighbours import embedding_neighbours

SETTINGS = AugmentSettings(
    copies=5, substitute_prob=0.4, mask_prob=0.1, ngram_prob=0.25, neighbours=3, seed=0
)
NEIGHBOURS = {
    "good": ["great", "fine", "nice"],
    "film": ["movie", "picture", "show"],
    "dull": ["boring", "flat", "bland"],
}
VOCABULARY = {w for words in NEIGHBOURS.values() for w in words} | set(NEIGHBOURS)
TEXTS_A = ["a good film .", "a dull film , not good", "good good good"]
TEXTS_B = ["the film was good", "a dull show", "nothing good here"]
LABELS = [1, 0, 1]


def _augmenter(settings=SETTINGS, **kw) -> Augmenter:
    return Augmenter(settings, NEIGHBOURS, mask_token="[MASK]", lowercase=True, **kw)


def test_same_seed_same_rows_other_seed_other_rows():
    first = _augmenter().augment(TEXTS_A, None, LABELS)
    assert first == _augmenter().augment(TEXTS_A, None, LABELS)
    other = _augmenter(dataclasses.replace(SETTINGS, seed=1)).augment(TEXTS_A, None, LABELS)
    assert other != first


def test_labels_follow_their_source_rows_and_copies_are_new():
    out = _augmenter(dataclasses.replace(SETTINGS, copies=20)).augment(TEXTS_A, None, LABELS)
    assert len(out["text_a"]) == len(out["label"]) == len(out["source"]) > 0
    for text, label, source in zip(out["text_a"], out["label"], out["source"]):
        assert label == LABELS[source]
        assert text != " ".join(split_words(TEXTS_A[source]))
    pairs = list(zip(out["source"], out["text_a"]))
    assert len(pairs) == len(set(pairs))  # no copy repeats within a row
    assert out["source"] == sorted(out["source"])


def test_every_word_comes_from_the_source_or_the_neighbours_or_is_the_mask():
    out = _augmenter(dataclasses.replace(SETTINGS, copies=30)).augment(TEXTS_A, TEXTS_B, LABELS)
    for column, originals in (("text_a", TEXTS_A), ("text_b", TEXTS_B)):
        for text, source in zip(out[column], out["source"]):
            allowed = set(split_words(originals[source])) | VOCABULARY | {"[MASK]"}
            assert set(text.split()) <= allowed, text


def test_pairs_keep_both_texts_of_one_row_and_are_never_cut():
    settings = dataclasses.replace(SETTINGS, copies=30, ngram_prob=1.0, substitute_prob=0.0)
    out = _augmenter(settings).augment(TEXTS_A, TEXTS_B, LABELS)
    assert len(out["text_a"]) == len(out["text_b"])
    for a, b, source in zip(out["text_a"], out["text_b"], out["source"]):
        # With substitution off only masking changes a pair: same length, same source words.
        for text, original in ((a, TEXTS_A[source]), (b, TEXTS_B[source])):
            words = split_words(original)
            assert len(text.split()) == len(words)
            assert all(w == o or w == "[MASK]" for w, o in zip(text.split(), words))


def test_ngram_sampling_cuts_single_sentences_to_a_span():
    settings = dataclasses.replace(
        SETTINGS, copies=30, ngram_prob=1.0, substitute_prob=0.0, mask_prob=0.0
    )
    out = _augmenter(settings).augment(["one two three four five six seven"], None, [0])
    assert out["text_a"], "n-gram sampling made no new rows"
    for text in out["text_a"]:
        assert 1 <= len(text.split()) <= 5
        assert text in "one two three four five six seven"


def test_zero_probabilities_make_no_rows():
    settings = dataclasses.replace(SETTINGS, substitute_prob=0.0, mask_prob=0.0, ngram_prob=0.0)
    out = _augmenter(settings).augment(TEXTS_A, None, LABELS)
    assert out == {"text_a": [], "label": [], "source": []}


def test_vocabulary_words_are_alphabetic_and_lowercased():
    assert vocabulary_words(["A good, GOOD film 42 !"], lowercase=True) == {"a", "good", "film"}


def test_neighbours_are_the_nearest_whole_words_by_cosine():
    vocab = {"[PAD]": 0, "king": 1, "queen": 2, "apple": 3, "##ing": 4, "kings": 5, "!": 6}
    table = torch.tensor(
        [
            [0.0, 0.0],
            [1.0, 0.0],  # king
            [0.9, 0.1],  # queen: closest to king
            [0.0, 1.0],  # apple: orthogonal
            [1.0, 0.0],  # ##ing: identical to king but a word piece
            [0.7, 0.3],  # kings
            [1.0, 0.0],  # punctuation, identical to king
        ]
    )
    out = embedding_neighbours(table, vocab, {"king", "unknown"}, k=2)
    assert out == {"king": ["queen", "kings"]}


def test_augmentation_settings_are_validated_by_the_config():
    with pytest.raises(ValueError, match="data.augment_copies"):
        DataSection(augment_copies=-1)
    with pytest.raises(ValueError, match="data.augment_mask_prob"):
        DataSection(augment_mask_prob=1.5)
    with pytest.raises(ValueError, match="data.augment_neighbours"):
        DataSection(augment_neighbours=0)


def test_unset_settings_resolve_to_the_recipe():
    from orchestrator.method.pipeline import augment_settings

    sst2 = augment_settings(load_config(None, ['task.name="sst2"']), get_task("sst2"))
    mrpc = augment_settings(load_config(None, ['task.name="mrpc"']), get_task("mrpc"))
    assert (sst2.copies, sst2.substitute_prob) == (20, 0.4)
    assert (mrpc.copies, mrpc.substitute_prob) == (30, 0.3)
    off = augment_settings(load_config(None, ["data.augment_copies=0"]), get_task("sst2"))
    assert off.copies == 0


def test_cache_key_changes_with_the_augmentation_settings():
    base = dict(
        task=get_task("sst2"),
        fingerprints={"train": "a", "validation": "b"},
        max_seq_length=32,
        seed=0,
        settings=TeacherSection(),
    )
    plain = knowledge.cache_key("bert-base-uncased", **base)
    assert knowledge.cache_key("bert-base-uncased", augment=None, **base) == plain
    off = dataclasses.replace(SETTINGS, copies=0)
    assert knowledge.cache_key("bert-base-uncased", augment=off, **base) == plain
    keys = {knowledge.cache_key("bert-base-uncased", augment=SETTINGS, **base)}
    for change in (
        {"copies": 6},
        {"substitute_prob": 0.3},
        {"mask_prob": 0.2},
        {"ngram_prob": 0.0},
        {"neighbours": 4},
        {"seed": 1},
    ):
        variant = dataclasses.replace(SETTINGS, **change)
        keys.add(knowledge.cache_key("bert-base-uncased", augment=variant, **base))
    assert plain not in keys and len(keys) == 7

"""Synthetic demo tasks: a sentiment and a paraphrase task the project generates itself.

The offline demo sweep and the tests need English text that a pre-trained encoder learns from a
few hundred examples, and real GLUE text may never be committed. Both tasks resist a bag of
words on purpose: sentiment has negation ("the plot was not dull" is positive) and contrast
("great acting but a boring story" is negative); paraphrase pairs overlap heavily in both
classes (an equivalent pair rewords, a non-equivalent one flips a verb, adds a negation, or
changes a name, a number, or who did what to whom).

Deterministic given a seed; no sentence repeats within one ``generate`` call, so a train/dev
split cut from one call never shares a sentence. Pure standard library.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_TOKEN = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")
_SLOT = re.compile(r"\{\w+\}")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and single punctuation characters (BERT's basic split on ASCII)."""
    return _TOKEN.findall(text.lower())


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split(", "))


@dataclass(frozen=True)
class DemoTaskSpec:
    name: str
    is_pair: bool
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...]  # in label-id order
    metric: str  # one of accuracy, f1, matthews_correlation, pearson, spearmanr
    label_column: str = "label"


DEMO_TASKS: dict[str, DemoTaskSpec] = {
    "sentiment": DemoTaskSpec(
        "sentiment", False, ("sentence",), ("negative", "positive"), "accuracy"
    ),
    # f1 of "equivalent" mirrors MRPC.
    "paraphrase": DemoTaskSpec(
        "paraphrase", True, ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "f1"
    ),
}

# ---------------------------------------------------------------------------------- sentiment
# SST-2 style: lower case, punctuation split off by spaces.
POSITIVE_WORDS = _words(
    "great, excellent, wonderful, superb, delightful, brilliant, charming, "
    "impressive, enjoyable, fantastic, lovely, good, memorable, solid"
)
NEGATIVE_WORDS = _words(
    "dull, boring, awful, terrible, bland, disappointing, mediocre, poor, "
    "weak, clumsy, tedious, bad, forgettable, sloppy"
)
_LEXICON = (NEGATIVE_WORDS, POSITIVE_WORDS)  # indexed by label id
_INTENSIFIERS = ("", "", "", "really ", "very ", "truly ", "quite ", "remarkably ")
# domain -> (aspects, names used as quoted titles, neutral sentences). No word here may carry
# polarity or negation: the tests' rule-based oracle relies on it.
_DOMAINS = {
    "movie": (
        _words("plot, acting, soundtrack, dialogue, ending, script, cast, pacing, camera work"),
        _words("midnight harbor, the silver road, paper moons, a quiet storm"),
        _words("it runs about two hours ., i watched it on a tuesday ., my sister picked it ."),
    ),
    "restaurant": (
        _words("food, service, pasta, dessert, soup, staff, menu, meal, coffee, wine list"),
        _words("casa verde, the blue door, golden spoon, little saigon"),
        _words("we went there on a friday ., it is near the station ., we sat by the window ."),
    ),
    "product": (
        _words("battery, screen, design, keyboard, camera, charger, speaker, phone, headset"),
        _words("nova x, zen pad, aero one, pixel lake"),
        _words("it arrived in a brown box ., i bought it last month ., it comes in three colors ."),
    ),
}
_OPENERS = _words("last weekend, on a rainy sunday, with my parents, after a long week, "
                  "for the second time, to be honest")  # fmt: skip
# GLUE text has stray double quotes; about 5% of sentences get one (the last is unbalanced).
_QUOTE_PREFIXES = ('" {name} " : ', 'about " {name} " , ', '" {name} , ')
_PLAIN = (
    "the {aspect} was {adj} .", "the {aspect} is {adj} .", "i found the {aspect} {adj} .",
    "the {aspect} felt {adj} .", "{adj} {aspect} , all things considered .",
    "the {aspect} ? {adj} .", "everyone agreed the {aspect} was {adj} .",
)  # fmt: skip
_NEGATED = (  # label is the opposite of the adjective's polarity
    "the {aspect} was not {adj} .", "the {aspect} was n't {adj} .",
    "the {aspect} was never {adj} .", "the {aspect} was hardly {adj} .",
    "i would not call the {aspect} {adj} .", "nobody could call the {aspect} {adj} .",
    "the {aspect} was far from {adj} .", "i did not find the {aspect} {adj} .",
)  # fmt: skip
_CONTRAST = (  # the {aspect2} clause decides, wherever it stands
    "the {aspect} was {adj} but the {aspect2} was {adj2} .",
    "although the {aspect} was {adj} , the {aspect2} was {adj2} .",
    "the {aspect} was {adj} , yet the {aspect2} was {adj2} .",
    "the {aspect} was {adj} ; however , the {aspect2} was {adj2} .",
    "despite the {adj} {aspect} , the {aspect2} was {adj2} .",
    "the {aspect2} was {adj2} even though the {aspect} was {adj} .",
)
# ~18% of rows need negation or contrast: enough that word order matters, few enough that the
# demo teacher (all-MiniLM-L6-v2, 2 epochs on 600 rows) still reaches ~88% (measured).
_SENTIMENT_KINDS = {"plain": 0.82, "negation": 0.09, "contrast": 0.09}


def _adjective(rng: random.Random, polarity: int) -> str:
    return rng.choice(_INTENSIFIERS) + rng.choice(_LEXICON[polarity])


def _sentiment_row(rng: random.Random, label: int) -> dict:
    kind = rng.choices(list(_SENTIMENT_KINDS), list(_SENTIMENT_KINDS.values()))[0]
    aspects, names, extras = _DOMAINS[rng.choice(sorted(_DOMAINS))]
    aspect, aspect2 = rng.sample(aspects, 2)
    if kind == "plain":
        core = rng.choice(_PLAIN).format(aspect=aspect, adj=_adjective(rng, label))
    elif kind == "negation":
        core = rng.choice(_NEGATED).format(aspect=aspect, adj=_adjective(rng, 1 - label))
    else:
        # The first clause always opposes the label. A quarter of the deciding clauses are
        # negated too, so both adjectives then point the wrong way for a bag of words.
        template, negated = rng.choice(_CONTRAST), rng.random() < 0.25
        if negated:
            template, kind = template.replace("was {adj2}", "was not {adj2}"), "contrast+negation"
        core = template.format(
            aspect=aspect,
            aspect2=aspect2,
            adj=_adjective(rng, 1 - label),
            adj2=_adjective(rng, 1 - label if negated else label),
        )
    draw = rng.random()
    if draw < 0.05:
        core = rng.choice(_QUOTE_PREFIXES).format(name=rng.choice(names)) + core
    elif draw < 0.30:
        core = f"{rng.choice(_OPENERS)} , {core}"
    if rng.random() < 0.15:
        extra = rng.choice(extras)
        core = f"{core} {extra}" if rng.random() < 0.5 else f"{extra} {core}"
    return {"sentence": core, "label": label, "kind": kind}


# --------------------------------------------------------------------------------- paraphrase
# MRPC style: cased news sentences. A frame is the meaning; a style is how it is worded.
_COMPANIES = _words("Northwind, Bluestone Energy, Apex Motors, Redwood Foods, Silverline Bank, "
                    "Orion Systems, Keystone Labs, Harbor Freight")  # fmt: skip
_NUMBER_WORDS = dict(enumerate(_words(
    "zero, one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve"
))) | {15: "fifteen", 20: "twenty", 30: "thirty", 40: "forty", 50: "fifty"}  # fmt: skip
_COUNTS = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20, 30, 40, 50)
# Per frame: (past, base, participle) synonyms, then the same for the opposite verb ("anti").
_VERBS = {
    "deal": ((("bought", "buy", "bought"), ("purchased", "purchase", "purchased")),
             (("sold", "sell", "sold"),)),
    "win": ((("beat", "beat", "beaten"), ("defeated", "defeat", "defeated")),
            (("lost to", "lose to", "lost to"),)),
    "hire": ((("hired", "hire", "hired"), ("recruited", "recruit", "recruited")),
             (("laid off", "lay off", "laid off"), ("fired", "fire", "fired"))),
    "report": ((("rose", "rise", "risen"), ("increased", "increase", "increased")),
               (("fell", "fall", "fallen"), ("dropped", "drop", "dropped"))),
}  # fmt: skip
_TEAMS = _words("the Falcons, the River Hawks, the Tigers, the Mariners, the Wolves, the Comets")
_CITIES = _words("Boston, Denver, Madrid, Toronto, Lyon, Osaka, Chicago, Dublin")
_ENTITIES = {
    "deal": {"buyer": _COMPANIES, "seller": _COMPANIES,
             "day": _words("Monday, Tuesday, Wednesday, Thursday, Friday"),
             "items": _words("trucks, factories, office buildings, patents, stores, ships")},
    "win": {"winner": _TEAMS, "loser": _TEAMS, "city": _CITIES},
    "hire": {"company": _COMPANIES, "city": _CITIES,
             "workers": _words("engineers, nurses, teachers, drivers, pilots, chefs")},
    "report": {"person": _words("Maria Lopez, James Carter, Anna Novak, David Chen, Laura Smith, "
                                "Peter Walsh, Sofia Rossi, Omar Haddad, Helen Park, Victor Stone"),
               "company": _COMPANIES, "metric": _words("sales, profits, exports, revenue, orders"),
               "month": _words("January, March, April, May, June, August, October")},
}  # fmt: skip
_ROLES = {"deal": ("buyer", "seller"), "win": ("winner", "loser")}
_VOICES = {"deal": 2, "win": 2, "hire": 2, "report": 4}
# Per frame: active clause, passive clause (or None), and the phrase that goes before or after.
_CLAUSES = {
    "deal": ("{buyer} {verb} {n} {items} {prep} {seller}",
             "{n} {items} {were} by {buyer} {prep} {seller}", "on {day}"),
    "win": ("{winner} {verb} {loser} {x} to {y}",
            "{loser} {were} by {winner} {x} to {y}", "in {city}"),
    "hire": ("{company} {verb} {n} {workers}", "{n} {workers} {were} by {company}", "in {city}"),
    "report": ("{metric} at {company} {verb} {pct}", None, "in {month}"),
}  # fmt: skip
_SPEECH = (  # the shapes of a report; the third starts with a quote, as some MRPC rows do
    "{person} said {text}", "{text}, {person} said", '"{quoted}," {person} said',
    "According to {person}, {text}",
)  # fmt: skip
_LITERALS = "did not were from to percent % , ."  # written by _verb and _render
# Non-equivalent edits. Measured with the demo teacher (all-MiniLM-L6-v2, 2 epochs on 600
# pairs): it learns opposite verbs and negation, but other names, numbers and swapped roles
# stay near chance until ~8 epochs, so those are the hard minority (dev accuracy ~0.67).
_CHANGES = {"antonym": 0.3, "negation": 0.3, "entity": 0.2, "number": 0.1, "swap": 0.1}


def _num(value: int, style: dict) -> str:
    return str(value) if style["digits"] else _NUMBER_WORDS[value]


def _verb(f: dict, s: dict, passive: bool = False) -> str:
    """The finite verb: past tense, do-support when negated, or were + participle."""
    forms = _VERBS[f["type"]][f["anti"]]
    past, base, participle = forms[s["verb"] % len(forms)]
    if passive:
        return f"were {'not ' if f['neg'] else ''}{participle}"
    return f"did not {base}" if f["neg"] else past


def _render(f: dict, s: dict) -> str:
    active, passive, phrase = _CLAUSES[f["type"]]
    values = {
        **f,
        "verb": _verb(f, s),
        "were": _verb(f, s, True),
        "prep": ("from", "to")[f["anti"]],
    }
    values |= {key: _num(f[key], s) for key in ("n", "x", "y") if key in f}
    if f["type"] == "report":
        values["pct"] = f"{f['n']}%" if s["pct"] and s["digits"] else f"{values['n']} percent"
    # Voice 1: the passive where there is one ("lost to" has none), a speech shape for reports.
    if s["voice"] == 1 and passive and not (f["type"] == "win" and f["anti"]):
        active = passive
    clause, phrase = active.format(**values), phrase.format(**values)
    text = f"{phrase}, {clause}" if s["front"] else f"{clause} {phrase}"
    if f["type"] == "report":
        quoted = text[0].upper() + text[1:]
        text = _SPEECH[s["voice"]].format(person=f["person"], text=text, quoted=quoted)
    return f"{text[0].upper()}{text[1:]}."


def _sample_frame(rng: random.Random) -> dict:
    kind = rng.choice(sorted(_VERBS))
    # Sentence 1 sometimes carries "not" or the opposite verb too, so their mere presence in a
    # pair does not settle the label (rarely: more made the task too hard for the teacher).
    frame: dict = {"type": kind, "neg": rng.random() < 0.05, "anti": int(rng.random() < 0.1)}
    for field, pool in _ENTITIES[kind].items():
        frame[field] = rng.choice([v for v in pool if v not in frame.values()])
    if kind == "win":
        frame["x"] = rng.randint(2, 9)
        frame["y"] = rng.randrange(frame["x"])
    else:
        frame["n"] = rng.choice(_COUNTS)
    return frame


def _change_meaning(rng: random.Random, frame: dict) -> tuple[dict, str]:
    """One meaningful edit: the opposite verb, negation, another entity or number, or roles."""
    kind = frame["type"]
    changes = [c for c in _CHANGES if c != "swap" or kind in _ROLES]
    change = rng.choices(changes, [_CHANGES[c] for c in changes])[0]
    new = dict(frame)
    if change == "entity":
        field = rng.choice(sorted(_ENTITIES[kind]))
        new[field] = rng.choice([v for v in _ENTITIES[kind][field] if v not in frame.values()])
    elif change == "number":
        key, pool = ("y", range(frame["x"])) if kind == "win" else ("n", _COUNTS)
        new[key] = rng.choice([v for v in pool if v != frame[key]])
    elif change == "swap":
        a, b = _ROLES[kind]
        new[a], new[b] = frame[b], frame[a]
    else:
        key = "anti" if change == "antonym" else "neg"
        new[key] = int(not frame[key])
    return new, change


def _restyle(rng: random.Random, style: dict, kind: str) -> dict:
    """One meaning-preserving rewording: synonym, voice/speech shape, phrase order, numerals."""
    field = rng.choice(["verb", "voice", "front", "digits"] + (["pct"] if kind == "report" else []))
    new = dict(style)
    if isinstance(style[field], bool):
        new[field] = not style[field]
    else:
        size = 2 if field == "verb" else _VOICES[kind]
        new[field] = rng.choice([v for v in range(size) if v != style[field]])
    return new


def _paraphrase_row(rng: random.Random, label: int) -> dict | None:
    frame = _sample_frame(rng)
    style1 = style2 = {"verb": rng.randrange(2), "voice": rng.randrange(_VOICES[frame["type"]]),
                       "front": rng.random() < 0.3, "digits": rng.random() < 0.6,
                       "pct": rng.random() < 0.3}  # fmt: skip
    if label == 1:
        other, kind, rewordings = frame, "paraphrase", rng.choice((1, 1, 1, 2))
    else:
        # Non-equivalent pairs are reworded too, so word overlap does not give the label away.
        other, change = _change_meaning(rng, frame)
        kind, rewordings = f"change:{change}", rng.choice((0, 1))
    for _ in range(rewordings):
        style2 = _restyle(rng, style2, frame["type"])
    first, second = _render(frame, style1), _render(other, style2)
    if first == second:  # a rewording with nothing to change (a verb with one synonym)
        return None
    return {"sentence1": first, "sentence2": second, "label": label, "kind": kind}


# ------------------------------------------------------------------------------------ public
def _spec(task: str) -> DemoTaskSpec:
    if task not in DEMO_TASKS:
        raise ValueError(f"unknown demo task {task!r}; choose one of {sorted(DEMO_TASKS)}")
    return DEMO_TASKS[task]


def generate(task: str, n: int, *, seed: int, with_kind: bool = False) -> list[dict]:
    """``n`` rows: the task's text columns and ``label`` (its name); ``kind`` if asked for.

    ``kind`` is how a row was built (sentiment: plain, negation, contrast, contrast+negation;
    paraphrase: paraphrase or change:antonym/negation/entity/number/swap), for tests.
    """
    spec = _spec(task)
    make = _sentiment_row if task == "sentiment" else _paraphrase_row
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[str] = set()
    labels: list[int] = []
    for _ in range(100 * n + 1000):
        if len(rows) == n:
            return rows
        if not labels:  # labels come in shuffled pairs: balanced in every prefix, up to one
            labels = [0, 1]
            rng.shuffle(labels)
        row = make(rng, labels[-1])
        texts = [row[c] for c in spec.text_columns] if row else []
        if not texts or any(t in seen for t in texts):
            continue  # a sentence never repeats, so any split of these rows is disjoint
        seen.update(texts)
        labels.pop()
        out = {c: row[c] for c in spec.text_columns}
        out[spec.label_column] = spec.label_names[row["label"]]
        rows.append(out | ({"kind": row["kind"]} if with_kind else {}))
    raise ValueError(f"could not generate {n} distinct {task} rows; ask for fewer")


def vocabulary() -> list[str]:
    """Every token (``tokenize`` rule) the generators can emit, sorted."""
    texts = [*POSITIVE_WORDS, *NEGATIVE_WORDS, *_INTENSIFIERS, *_OPENERS, *_QUOTE_PREFIXES]
    texts += [*_PLAIN, *_NEGATED, *_CONTRAST, *_SPEECH, _LITERALS]
    texts += [t for clauses in _CLAUSES.values() for t in clauses if t]
    texts += [w for group in _DOMAINS.values() for words in group for w in words]
    texts += [w for pools in _ENTITIES.values() for pool in pools.values() for w in pool]
    texts += [w for verbs in _VERBS.values() for forms in verbs for f in forms for w in f]
    texts += [*map(str, _NUMBER_WORDS), *_NUMBER_WORDS.values()]
    return sorted({token for text in texts for token in tokenize(_SLOT.sub(" ", text))})


def _write_files(folder: Path, files: dict[str, str]) -> None:
    """Write into a staging folder, then rename it into place: a new task folder appears only
    when complete (the sweep regenerates a task only when its folder is missing)."""
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    staging.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (staging / name).write_bytes(text.encode("utf-8"))
    try:
        os.rename(staging, folder)  # atomic; fails when the folder exists and is not empty
    except OSError:
        folder.mkdir(exist_ok=True)
        for name in files:
            os.replace(staging / name, folder / name)
        staging.rmdir()


def _split(task: str, train_size: int, dev_size: int, seed: int) -> tuple[list, list]:
    if train_size < 1 or dev_size < 1:
        raise ValueError(f"train_size and dev_size must be >= 1, got {train_size}, {dev_size}")
    rows = generate(task, train_size + dev_size, seed=seed)
    return rows[:train_size], rows[train_size:]


def write_demo_task(
    root: Path, task: str, *, train_size: int, dev_size: int, seed: int, fmt: str = "csv"
) -> Path:
    """Write ``root/<task>/train.<fmt>`` and ``dev.<fmt>`` (csv or jsonl); return the folder."""
    spec = _spec(task)
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"fmt must be 'csv' or 'jsonl', got {fmt!r}")
    files = {}
    for split, rows in zip(("train", "dev"), _split(task, train_size, dev_size, seed)):
        if fmt == "jsonl":
            files[f"{split}.{fmt}"] = "".join(json.dumps(row) + "\n" for row in rows)
            continue
        buffer = io.StringIO()
        fields = [*spec.text_columns, spec.label_column]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        files[f"{split}.{fmt}"] = buffer.getvalue()
    folder = Path(root) / task
    _write_files(folder, files)
    return folder


_GLUE = {"sst2": ("SST-2", "sentiment"), "mrpc": ("MRPC", "paraphrase")}


def write_glue_layout(
    root: Path, glue_task: str, *, train_size: int, dev_size: int, seed: int
) -> Path:
    """Generated rows in GLUE's own TSV layout (``SST-2`` or ``MRPC``); return that folder.

    Unquoted tab-separated fields as GLUE ships them, so sentences with a stray ``"`` test that
    a reader does not treat quotes specially; MRPC files start with a UTF-8 BOM, as GLUE's do.
    """
    key = glue_task.lower().replace("-", "")
    if key not in _GLUE:
        raise ValueError(f"unknown GLUE task {glue_task!r}; choose one of {sorted(_GLUE)}")
    folder_name, task = _GLUE[key]
    names = DEMO_TASKS[task].label_names
    ids = random.Random(seed + 7919)  # its own stream, so ids never change the rows
    files = {}
    for split, rows in zip(("train", "dev"), _split(task, train_size, dev_size, seed)):
        if key == "sst2":
            lines = ["sentence\tlabel"]
            lines += [f"{r['sentence']}\t{names.index(r['label'])}" for r in rows]
        else:
            lines = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
            for r in rows:
                first, second = ids.randint(10_000, 3_999_999), ids.randint(10_000, 3_999_999)
                quality = names.index(r["label"])
                lines.append(f"{quality}\t{first}\t{second}\t{r['sentence1']}\t{r['sentence2']}")
        files[f"{split}.tsv"] = "\n".join(lines) + "\n"
    folder = Path(root) / folder_name
    _write_files(folder, files)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.tasks.demo",
        description="Write the synthetic demo tasks: sentiment (csv) and paraphrase (jsonl).",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write the tasks into")
    parser.add_argument("--train-size", type=int, default=600)
    parser.add_argument("--dev-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--glue", action="store_true", help="also write SST-2/ and MRPC/ TSVs")
    args = parser.parse_args(argv)
    sizes = {"train_size": args.train_size, "dev_size": args.dev_size, "seed": args.seed}
    try:
        written = [
            write_demo_task(args.out, "sentiment", fmt="csv", **sizes),
            write_demo_task(args.out, "paraphrase", fmt="jsonl", **sizes),
        ]
        if args.glue:
            written += [write_glue_layout(args.out, t, **sizes) for t in ("sst2", "mrpc")]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for folder in written:
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Would a per-message labeller learned from the labelled conversations beat the theme phrases?

An experiment, not a part of duologue: a softmax classifier (numpy, L2-regularised, trained by gradient
descent) over each message's features — its WordLlama vector, its cosine with the opening, its score for
every phrase theme, its length — predicts the family a message is in (spiritual bliss, mutual praise,
farewell, meta-loop or none), trained on the labelled episodes of the conversations ("episodes":
[first, last, family]). Its labels replace the phrase labels (rule labels — silence, emoji, verbatim,
on task — are kept) and the attractor rule runs on them as it does in `duologue analyze`. Printed, for
the phrase labels and the learned ones:

- message accuracy against the episodes (messages with a rule label left out);
- conversations given the right class (a family, topic_from_start or none), and drifts found with their
  family within ±2 messages of the labelled onset;
- on real logs (with --real LABELS --corpus DIR, as attractor_eval.py takes them): the same class count.

Folds: the blind dev half by 5-fold cross-validation over conversations; the test half with the model
trained on all of dev; real-held with the model trained on dev and real-dev (the real logs at even
positions by file name).

    python bench/learned_labeller.py [--real bench/attractor_eval/real-labels.json --corpus DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from attractor_eval import EVAL, FAMILY_OF, Case, load_half, load_real, split_real  # noqa: E402

CLASSES = ["none", "bliss", "praise", "farewell", "meta_loop"]
OF_LABEL = {
    "spiritual_bliss": "bliss",
    "mutual_praise": "praise",
    "farewell_spiral": "farewell",
    "meta_loop": "meta_loop",
}
SHOWN_AS = {"bliss": "gratitude", "praise": "praise", "farewell": "farewell", "meta_loop": "meta_loop"}


@dataclasses.dataclass
class Item:
    case: Case
    truth: list[str]  # each message's family from the episodes, or "none"
    features: np.ndarray
    trajectory: list  # the phrase analysis's MessageThemes


def _items(cases: list[Case], episodes: dict[str, list]) -> list[Item]:
    from duologue.analysis import analyze
    from duologue.analysis.embeddings import get_embedder

    embedder = get_embedder()
    out = []
    for case in cases:
        truth = ["none"] * len(case.contents)
        for first, last, family in episodes.get(case.id) or []:
            if family in OF_LABEL:
                for i in range(first, min(last, len(truth)) + 1):
                    truth[i - 1] = OF_LABEL[family]
        a = analyze(case.speakers, case.contents)
        vectors = embedder.embed(case.contents)
        ids = sorted(a.themes[0].scores)
        rows = [
            np.concatenate(
                [vectors[i], [m.opening], [m.scores.get(t, 0.0) for t in ids], [min(len(case.contents[i]) / 1000, 1)]]
            )
            for i, m in enumerate(a.themes)
        ]
        out.append(Item(case, truth, np.array(rows), a.themes))
    return out


def _family(label: str | None) -> str:
    from duologue.analysis.themes import builtin_themes

    if label is None:
        return "none"
    family = builtin_themes().family_of(label)
    return family if family in CLASSES else "rule"


def _train(items: list[Item], l2: float = 1e-2, steps: int = 400, rate: float = 0.5):
    x = np.vstack([it.features for it in items])
    y = np.eye(len(CLASSES))[[CLASSES.index(t) for it in items for t in it.truth]]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x = (x - mu) / sd
    w, b = np.zeros((x.shape[1], len(CLASSES))), np.zeros(len(CLASSES))
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = p - y
        w -= rate * (x.T @ g / len(x) + l2 * w)
        b -= rate * g.mean(0)
    return lambda it: [CLASSES[i] for i in (((it.features - mu) / sd) @ w + b).argmax(1)]


def _phrases(it: Item) -> list[str]:
    return [f if (f := _family(m.label)) != "rule" else "none" for m in it.trajectory]


def _score(items: list[Item], labels_of) -> dict:
    from duologue.analysis.entry import detect_attractor, topic_from_start
    from duologue.analysis.themes import AttractorParams, builtin_themes

    themes, params = builtin_themes(), AttractorParams()
    right = total = same = drifts = within = 0
    for it in items:
        labels = labels_of(it)
        trajectory = []
        for m, label, truth in zip(it.trajectory, labels, it.truth, strict=True):
            if _family(m.label) == "rule":
                trajectory.append(m)
                continue
            total += 1
            right += label == truth
            trajectory.append(dataclasses.replace(m, label=None if label == "none" else SHOWN_AS[label]))
        a = detect_attractor(trajectory, themes, params)
        topic = topic_from_start(trajectory, themes, params)
        got = FAMILY_OF.get(a.theme, a.theme) if a else ("topic_from_start" if topic else "none")
        c = it.case
        want = c.attractor or ("topic_from_start" if c.end_state == "topic_from_start" else "none")
        same += got == want
        if c.attractor:
            drifts += 1
            within += bool(a and got == want and c.onset and abs(a.onset - c.onset) <= 2)
    return {"accuracy": right / total, "same": same, "n": len(items), "drifts": drifts, "within2": within}


def _line(name: str, r: dict) -> str:
    return (
        f"  {name:34} message accuracy {r['accuracy']:.2f}   right class {r['same']}/{r['n']}   "
        f"drifts within ±2 {r['within2']}/{r['drifts']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", help="labels of real logs (see attractor_eval.py)")
    ap.add_argument("--corpus", help="the folder holding the real logs")
    args = ap.parse_args()

    def episodes(folder: Path) -> dict[str, list]:
        return {
            (d := json.loads(f.read_text(encoding="utf-8"))).get("id", f.stem): d["label"].get("episodes")
            for f in folder.glob("*.json")
        }

    dev = _items(load_half(EVAL / "dev"), episodes(EVAL / "dev"))
    test = _items(load_half(EVAL / "test"), episodes(EVAL / "test"))
    folds = np.array_split(np.random.default_rng(0).permutation(len(dev)), 5)
    crossed: dict[str, list[str]] = {}
    for fold in folds:
        held = set(fold.tolist())
        model = _train([it for i, it in enumerate(dev) if i not in held])
        crossed |= {dev[i].case.id: model(dev[i]) for i in held}
    print(f"blind dev half ({len(dev)}, 5-fold cross-validation):")
    print(_line("phrases (duologue today)", _score(dev, _phrases)))
    print(_line("learned", _score(dev, lambda it: crossed[it.case.id])))
    model = _train(dev)
    print(f"blind test half ({len(test)}, trained on dev):")
    print(_line("phrases (duologue today)", _score(test, _phrases)))
    print(_line("learned", _score(test, model)))
    if args.real and args.corpus:
        entries = json.loads(Path(args.real).read_text(encoding="utf-8"))
        by_file = {e["file"]: e.get("episodes") for e in entries}
        real_dev = _items(load_real(Path(args.real), Path(args.corpus), "dev"), by_file)
        real_held = _items(load_real(Path(args.real), Path(args.corpus), "held"), by_file)
        assert len(split_real(entries, "held")) >= len(real_held)
        model = _train(dev + real_dev)
        print(f"real-held ({len(real_held)} UniversalBackrooms logs, trained on dev and real-dev):")
        print(_line("phrases (duologue today)", _score(real_held, _phrases)))
        print(_line("learned", _score(real_held, model)))


if __name__ == "__main__":
    main()

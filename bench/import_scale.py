"""A corpus of 875 UniversalBackrooms logs: `duologue import DIR --experiment`, then `duologue report`.

Writes a synthetic corpus in the shapes of samhains/UniversalBackrooms' var/backrooms_logs/ (its text
made up here, from a small invented vocabulary; its sizes close to the real folder's: 875 logs, about
19 MB, messages of about 1.4 KB on average, up to 30 rounds): folders per template, the header, round
lines, numbered actors, the media, Discord and SQL agents' blocks and error lines, every end line,
runs where one side spoke, logs holding only their header, logs holding only agents' blocks, and
side files. Then times, each as a user runs it (a new process):

- `duologue import DIR --experiment synthetic` (read, store and analyse every log);
- `duologue report synthetic` (tables, the attractor map and the plots, over the collection);
- `duologue import FILE` for a sample of the logs, one process each, scaled to the whole folder:
  what importing the corpus took before a folder was one command.

    .venv/bin/python bench/import_scale.py [--logs 875] [--sample 20]

(`bench/import_corpus.py PATH` runs the same import on a real folder and says what became of each file.)
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {  # key: display name, as UniversalBackrooms' model_config.py names them
    "gpt5": "GPT-5",
    "k2": "Kimi K2",
    "opus4": "Claude",
    "sonnet4": "Claude",
    "hermes": "Hermes 405B",
    "hermes_reasoning": "Hermes 405B (Reasoning)",
    "v31": "DeepSeek V3.1",
}
TEMPLATES = ["dreamsim3", "dreamsim2", "emoji_brother", "worldsim", "cli", "roleplay"]
SYLLABLES = "ka lo mi ru sen ta vo ne pi la dor fen quo zi ma bel tor nu ari sol ven".split()
MARKS = ["", "", "", ".", ",", "…", "!", "?", " —", " ✨", " 🌀"]


def word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))


def paragraph(rng: random.Random, words: int) -> str:
    return " ".join(word(rng) + rng.choice(MARKS) for _ in range(words))


def message(rng: random.Random) -> str:
    """About 1.4 KB on average: a few paragraphs, sometimes a command line or a code block."""
    size = min(int(rng.lognormvariate(4.8, 0.8)), 2500)  # words
    parts, left = [], size
    while left > 0:
        n = min(left, rng.randint(20, 90))
        parts.append(paragraph(rng, n))
        left -= n
    if rng.random() < 0.3:
        parts.insert(0, f"simulator@{word(rng)}:~/$ {word(rng)} --{word(rng)}")
    if rng.random() < 0.1:
        parts.append("```\n" + "\n".join(paragraph(rng, 6) for _ in range(4)) + "\n```")
    return "\n\n".join(parts)


def agent_blocks(rng: random.Random) -> str:
    blocks = [
        f"\n### Media Agent ###\nMode: t2i\nPrompt: {paragraph(rng, 20)}\nResult: "
        + json.dumps({"uri": f"https://example.invalid/{word(rng)}.png"})
        + "\n",
        f"\n### Media Agent (Discord Post) ###\nChannel: {word(rng)}\nMedia: https://example.invalid/x.png\n"
        "Result: DRY RUN (not posted)\n",
        f"\n### Discord Agent ###\n{paragraph(rng, 30)}\n",
    ]
    if rng.random() < 0.2:
        blocks.append("\nDiscord Agent error: list index out of range\n")
    if rng.random() < 0.1:
        blocks.append(f"\n### SQL (semantic) ###\nSELECT id FROM images WHERE caption % '{word(rng)}' LIMIT 3;\n")
    return "".join(rng.sample(blocks, rng.randint(1, len(blocks))))


def log_text(rng: random.Random, keys: list[str], template: str, shape: str, started: str) -> str:
    """One log, as backrooms.py appends it."""
    text = f"### Backrooms Run ###\nTemplate: {template}\nModels: {', '.join(keys)}\nStarted: {started}\n"
    if shape == "header":
        return text + ("\n### Round 1/30\n" if rng.random() < 0.5 else "")
    total = rng.choice(["30", "30", "20", "inf"])
    rounds = 1 if shape == "one" else rng.randint(2, 18)
    actors = [f"{MODELS[k]} {i}" for i, k in enumerate(keys, 1)]
    looping = rng.random() < 0.15  # a run that falls into repeating itself
    loop_text = [message(rng) for _ in actors]
    for r in range(1, rounds + 1):
        text += f"\n### Round {r}/{total}\n"
        for i, actor in enumerate(actors if shape != "one" else actors[:1]):
            body = loop_text[i] if looping and r > rounds // 2 else message(rng)
            text += f"\n### {actor} ###\n{body}\n"
        if shape == "agents":
            text += agent_blocks(rng)
    end = rng.random()
    if shape == "one" or end < 0.5:
        return text  # stopped by hand: no end line
    if end < 0.7:
        text += f"\n{actors[0]} has ended the conversation with ^C^C.\n"
    elif end < 0.75:
        text += "\nContext budget limit reached (>= 80% of 200000 tokens). Conversation ended.\n"
    return text + f"\nReached maximum number of turns ({total}). Conversation ended.\n"


def write_corpus(folder: Path, logs: int = 875, seed: int = 23) -> dict[str, int]:
    """`logs` logs in the real folder's proportions (about 66% plain, 14% with agents' blocks, 7% one side,
    8% header only, 5% agents' blocks only), plus a side file per template. Returns the count per shape."""
    rng = random.Random(seed)
    shapes = rng.choices(["plain", "agents", "one", "header", "lucid"], weights=[66, 14, 7, 8, 5], k=logs)
    counts: dict[str, int] = {}
    for k, shape in enumerate(shapes):
        counts[shape] = counts.get(shape, 0) + 1
        stamp = f"202509{1 + k // 100:02d}_{k % 24:02d}{k % 60:02d}{(k * 7) % 60:02d}"
        if shape == "lucid":  # a media-posting run: agents' blocks only
            path = folder / "oneoff" / f"lucid_{stamp}_{word(rng).upper()}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(agent_blocks(rng), encoding="utf-8")
            (path.parent / (path.name + ".media_state.json")).write_text("{}\n", encoding="utf-8")
            continue
        template = rng.choice(TEMPLATES)
        keys = [rng.choice(list(MODELS)) for _ in range(2)]
        path = folder / template / f"{'_'.join(keys)}_{template}_{stamp}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        started = f"2025-09-{1 + k // 100:02d}T{k % 24:02d}:{k % 60:02d}:{(k * 7) % 60:02d}+00:00"
        path.write_text(log_text(rng, keys, template, shape, started), encoding="utf-8")
    for template in TEMPLATES:
        (folder / template / f"{template}_meta.jsonl").write_text('{"curated": false}\n', encoding="utf-8")
    return counts


def duologue(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "duologue", *args], cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, proc


def measure(logs: int = 875, sample: int = 20) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        corpus = here / "backrooms_logs"
        counts = write_corpus(corpus, logs)
        files = sorted(corpus.rglob("*.txt"))
        size = sum(p.stat().st_size for p in files)
        command = ("import", str(corpus), "--experiment", "synthetic", "--json", "--db", "c.db")
        import_s, proc = duologue(*command, cwd=here)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"import failed ({proc.returncode}): {proc.stderr}")
        outcome = json.loads(proc.stdout)
        report_s, proc = duologue("report", "synthetic", "--json", "--db", "c.db", "-o", "report", cwd=here)
        if proc.returncode != 0:
            raise SystemExit(f"report failed ({proc.returncode}): {proc.stderr}")
        report = json.loads(proc.stdout)
        picked = random.Random(5).sample(files, min(sample, len(files)))
        one_by_one = sum(duologue("import", str(p), "--db", "one.db", cwd=here)[0] for p in picked)
    return {
        "logs": len(files),
        "megabytes": size / 1e6,
        "shapes": counts,
        "imported": len(outcome["imported"]),
        "skipped": len(outcome["skipped"]),
        "messages": sum(r["messages"] for r in outcome["imported"]),
        "import_s": import_s,
        "report_s": report_s,
        "pairings": len(report["by_pairing"]),
        "templates": len(report.get("by_template", [])),
        "sample": len(picked),
        "one_by_one_s": one_by_one * len(files) / len(picked),
    }


def rows(m: dict) -> list[tuple[str, str, str, str]]:
    """(what, measured, ratio, target) for bench/run.py's table."""
    return [
        (
            f"{m['logs']} synthetic logs ({m['megabytes']:.0f} MB, {m['messages']} messages): "
            "`import DIR --experiment` (wall)",
            f"{m['import_s']:.1f}s",
            f"{m['imported']} in, {m['skipped']} out",
            "< 30 s",
        ),
        (
            f"`report` over them ({m['pairings']} pairings, {m['templates']} templates; wall)",
            f"{m['report_s']:.1f}s",
            "",
            "< 30 s",
        ),
        (
            f"one `import FILE` per log, no analysis ({m['sample']} timed, scaled) / the folder's, analysed",
            f"{m['one_by_one_s']:.0f}s / {m['import_s']:.1f}s",
            f"{m['one_by_one_s'] / m['import_s']:.1f}x",
            "",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=875)
    ap.add_argument("--sample", type=int, default=20, help="logs imported one process each, to scale")
    args = ap.parse_args()
    m = measure(args.logs, args.sample)
    print(f"shapes: {m['shapes']}")
    for what, measured, ratio, target in rows(m):
        print(f"{what}: {measured}  {ratio}  (target {target})" if target else f"{what}: {measured}  {ratio}")


if __name__ == "__main__":
    main()

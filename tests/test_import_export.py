"""`duologue import` then `duologue export` gives back the very same bytes."""

from __future__ import annotations

import json
import random

from helpers import EXAMPLE_MD, run_cli


def imported_id(stdout: str) -> str:
    return stdout.split(" as run ")[1].split()[0]


def make_transcript(rng: random.Random, names: list[str], n: int) -> str:
    lines = [
        "Hello there.",
        "Still here.  ",
        "",
        "---",
        "[END]",
        "🌀 ✨ 🙏",
        "A *map* of the\u200b conversation",
        "Farewell, kind soul 🌙",
        "### not a heading",
        "> quoted",
        "1. one\n2. two",
    ]
    out = [
        f"# {' ↔ '.join(names)}\n\n"
        f"**Started:** 2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} "
        f"0{rng.randint(0, 9)}:1{rng.randint(0, 9)}:2{rng.randint(0, 9)}\n"
        f"**Ended:** 2025-10-01 23:59:59\n**Messages:** {n}\n\n---\n\n"
    ]
    for i in range(n):
        content = " " if i == 0 else "\n".join(rng.choice(lines) for _ in range(rng.randint(1, 5)))
        out.append(f"### {names[i % len(names)]}\n\n{content}\n\n---\n\n")
    return "".join(out)


def test_example_round_trips_through_the_store(tmp_path):
    text = EXAMPLE_MD.read_text(encoding="utf-8")
    (tmp_path / "ex.md").write_text(text, encoding="utf-8")
    proc = run_cli("import", "ex.md", cwd=tmp_path, check=True)
    assert "17 messages" in proc.stdout
    out = run_cli("export", imported_id(proc.stdout), "--format", "md", cwd=tmp_path, check=True).stdout
    assert out.encode("utf-8") == text.encode("utf-8")


def test_generated_transcripts_round_trip(tmp_path):
    rng = random.Random(7)
    for k, names in enumerate([["qwen3-next", "deepseek-3.1"], ["claude", "gpt"], ["a", "b", "c"]]):
        text = make_transcript(rng, names, rng.randint(2, 60))
        path = tmp_path / f"t{k}.md"
        path.write_text(text, encoding="utf-8")
        rid = imported_id(run_cli("import", path.name, cwd=tmp_path, check=True).stdout)
        exported = run_cli("export", rid, cwd=tmp_path, check=True).stdout
        assert exported == text
        data = json.loads(run_cli("export", rid, "--format", "json", cwd=tmp_path, check=True).stdout)
        assert data["participants"] == names and data["source"].endswith(path.name)


def test_json_export_imports_back(tmp_path):
    (tmp_path / "ex.md").write_text(EXAMPLE_MD.read_text(encoding="utf-8"), encoding="utf-8")
    rid = imported_id(run_cli("import", "ex.md", cwd=tmp_path, check=True).stdout)
    run_cli("export", rid, "--format", "json", "-o", "ex.json", "--db", "runs/duologue.db", cwd=tmp_path, check=True)
    again = run_cli("import", "ex.json", "--db", "other/d.db", cwd=tmp_path, check=True)
    assert imported_id(again.stdout) == rid
    md = run_cli("export", rid, "--db", "other/d.db", cwd=tmp_path, check=True).stdout
    assert md == EXAMPLE_MD.read_text(encoding="utf-8")

"""The near-loop size guard: a short message quoted inside a long reply is not a repeat."""

import random

from duologue.analysis.loops import LoopParams, LoopWatcher, comparable, detect_near_loop, near_duplicates
from duologue.analysis.text import char_ngrams, normalize

COMMANDS = [
    "ls -la /home/explorer",
    "cat notes/first_contact.txt",
    "cd ../archive",
    "run decode --verbose",
    "open door_7",
    "grep -r 'signal' logs/",
    "ping lighthouse.local",
    "whoami",
    "history | tail",
    "ssh keeper@tower",
    "mount /dev/dream0 /mnt",
    "./simulate --depth 3",
    "tree -L 2 /world",
    "find / -name '*.memory'",
    "echo $HORIZON",
    "top -n 1",
    "df -h",
    "uname -a",
    "stat relic.bin",
    "tar -xzf past.tgz",
]
NOUNS = [
    "lantern",
    "corridor",
    "archive",
    "signal",
    "orchard",
    "machine",
    "harbour",
    "glacier",
    "library",
    "reactor",
    "meadow",
    "observatory",
    "cathedral",
    "tunnel",
    "garden",
    "vault",
]


SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vu", "no", "pel", "shi", "dor", "ga", "fen", "ri", "zo"]


def simulator_reply(command: str, rng: random.Random) -> str:
    """A simulator echoes the command, then answers at length, in new words each time."""
    lines = [f"$ {command}"]
    for _ in range(rng.randint(6, 10)):
        made_up = " ".join("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(5))
        lines.append(f"{rng.choice(NOUNS)} {made_up} {rng.randint(100, 999)}")
    return "\n".join(lines)


def dreamsim(pairs: int = 20, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    contents = []
    for i in range(pairs):
        # As in a Backrooms "dreamsim" log: every command comes at the simulator's prompt.
        command = f"simulator@anthropic:~/$ {COMMANDS[i % len(COMMANDS)]}"
        contents += [command, simulator_reply(command, rng)]
    return contents


def test_a_quoted_command_overlaps_fully_but_is_not_comparable():
    command = "simulator@anthropic:~/$ cat notes/first_contact.txt"
    short = char_ngrams(normalize(command))
    long = char_ngrams(normalize(simulator_reply(command, random.Random(1))))
    assert short <= long  # the reply quotes the command whole: overlap coefficient 1.0
    assert not comparable(short, long, 0.5)
    assert comparable(short, short, 0.5)


def test_simulator_exchange_stays_quiet():
    contents = dreamsim()
    flags, lags = near_duplicates(contents)
    # No reply counts as a repeat of the command it quotes (commands, which share the
    # prompt, may resemble each other: they are half the messages, not a loop).
    assert not any(flags[1::2])
    assert 1 not in lags
    assert detect_near_loop(contents) is None
    watcher = LoopWatcher()
    assert [e for c in contents for e in watcher.observe(c)] == []


def test_without_the_guard_the_same_exchange_is_a_false_alarm():
    # The rule the guard replaced (near_size_ratio 0): every reply "repeats" its command.
    near = detect_near_loop(dreamsim(), LoopParams(near_size_ratio=0.0))
    assert near is not None and near.onset <= 2 and near.dominant_lag == 1


def test_guard_keeps_repeated_templates_of_similar_length():
    line = "Farewell, dear friend ✨ May your road be bright and the stars keep you company."
    contents = ["Tell me about rivers.", "Rivers carve valleys over long ages of patient water."]
    contents += [line.replace("dear friend", f"friend number {i}") for i in range(12)]
    near = detect_near_loop(contents)
    assert near is not None and near.onset == 3

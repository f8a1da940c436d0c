"""What both embedded engines share: a participant's settings, a file's weight type, the lock around loads,
prefix reuse, a view as the chat template takes it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage

    from ..base import ChatMessage


# Which embedded engine backs `local/...` participants: "shared" (the default: a llama.cpp sequence per
# participant, decoded together with the others in the pool) or "llama" (a llama-cpp-python `Llama`
# per participant, as duologue first did; kept for comparison, see simple.py).
EMBEDDED_ENGINE_ENV = "DUOLOGUE_EMBEDDED_ENGINE"


@dataclass
class LlamaSettings:
    context_length: int = 2048
    threads: int | None = None
    seed: int | None = None
    weights: str = "auto"  # auto, q4_1 or q8_0 (weights.py); auto is resolved by whoever makes the engine
    lookup: bool | None = None  # lookup decoding (lookup.py; the shared engine only); None: where it pays


def file_type(path: Path) -> str:
    """The weight type a GGUF's name says (`...Q4_1.gguf` -> q4_1), lower case; '' when it says none."""
    stem = path.stem.lower()
    for kind in ("q8_0", "q4_1", "q4_0", "q5_0", "q5_1", "bf16", "f16", "f32"):  # bf16 before f16
        if stem.endswith(kind):
            return kind
    return ""


# llama-cpp-python silences llama.cpp while loading a model by pointing file
# descriptors 1 and 2 at /dev/null and back. Two loads at once in two threads
# interleave those swaps and can leave the process's stdout at /dev/null for
# good, so loads (and frees) take turns. Process-wide on purpose: so are fds.
STDIO_SWAP_LOCK = threading.Lock()


def common_prefix(a, b) -> int:
    """How many tokens two sequences share from the start: what a cache holding `a` keeps for `b`."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def template_messages(messages: list[ChatMessage]) -> list[ChatCompletionRequestMessage]:
    """A participant's view as llama-cpp-python's chat formatter takes it. Its types are one TypedDict
    per role; a role known only at run time matches them all, hence the cast."""
    return [cast("ChatCompletionRequestMessage", {"role": m.role, "content": m.content}) for m in messages]

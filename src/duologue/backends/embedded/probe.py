"""The probe's child: load a GGUF with llama.cpp's extra buffer types on or off, decode, print what it saw.

    python -m duologue.backends.embedded.probe GGUF --extra-bufts on|off [--time]

It runs in a process of its own because what it checks can kill a process:
llama.cpp's extra buffer types (the AMX kernels of Intel Xeons of the Sapphire
Rapids generation and later, and the CPU "repack" of weights into
interleaved layouts) segfault in `ggml_backend_amx_mul_mat` on some machines
(llama.cpp issue 20824) and give wrong results with Q4_0/Q4_1 where they do
not crash (llama.cpp PR 16315). So the child decodes greedily the steps the
engine makes: one prompt as a chunk, then one token at a time; three more
prompts in one batch, then a token of each per step. It prints the greedy
tokens as one JSON line; the parent (guard.py) compares them with those of a
child that loaded the file without extra buffer types, and a child killed by
a signal says what it had to say.

`--time` also measures, on the configuration loaded, what decides which
weights `auto` picks (guard.py): a turn of a lone conversation (a prompt
chunk, then single tokens, on every usable core) and a shard's steps in a
batch (one thread, a token for each of four sequences per step, and a prompt
chunk), and, both ways, steps of 16 tokens of one sequence (what verifying
lookup decoding's drafts costs), best of a few repeats.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Fixed text, so that the two children decode the same tokens. Raw text, not a chat template: the check is
# the arithmetic of the kernels, and every GGUF has a vocabulary.
PROMPTS = (
    "The tide came in slowly over the flat grey sand, and the old fisherman said",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Question: Why is the sky blue?\nAnswer:",
    "Dear diary, today I finally understood why my grandmother kept every letter she ever received. It was",
)
GREEDY_ALONE = 12  # tokens decoded one at a time after the first prompt
GREEDY_BATCHED = 8  # tokens of each of the other prompts, decoded together
STREAM = 256  # cells per sequence

# The timing workload (--time): what a turn costs a lone engine, and a batched shard's step.
TURN_PROMPT = 64  # tokens a turn evaluates before replying (the other's message and the template)
TURN_REPLY = 24  # tokens decoded one at a time (timed; a reply of 80 is scaled from it)
BATCH_SEQS = 4  # sequences decoding together on one shard (a batch of 8 conversations on 2 cores)
BATCH_STEPS = 8
DRAFT_STEP, DRAFT_STEPS = 16, 3  # a lookup verification step: a token and its drafts, of one sequence
REPEATS = 2


class Child:
    def __init__(self, path: Path, extra_bufts: bool):
        import llama_cpp
        from llama_cpp._internals import LlamaModel
        from llama_cpp._logger import set_verbose

        set_verbose(False)
        llama_cpp.llama_backend_init()
        self.ll = llama_cpp
        params = llama_cpp.llama_model_default_params()
        params.use_extra_bufts = extra_bufts
        self.model = LlamaModel(path_model=str(path), params=params, verbose=False)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.cores = _usable_cores()
        # A context as the engine makes one (decode.py): a stream per sequence, flash attention.
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = len(PROMPTS) * STREAM
        cparams.n_batch = cparams.n_ubatch = STREAM
        cparams.n_seq_max = len(PROMPTS)
        cparams.kv_unified = False
        cparams.n_threads = cparams.n_threads_batch = self.cores
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model.model, cparams)
        if self.ctx is None:
            raise RuntimeError("cannot create a context")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(STREAM, 0, 1)
        self.held = [0] * len(PROMPTS)

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def decode(self, chunks: list[tuple[int, list[int]]]) -> list[int]:
        """One llama_decode of each sequence's tokens; the greedy next token of each, in order."""
        b, n, last = self.batch, 0, []
        for seq, tokens in chunks:
            for i, token in enumerate(tokens):
                b.token[n], b.pos[n], b.n_seq_id[n], b.seq_id[n][0] = token, self.held[seq] + i, 1, seq
                b.logits[n] = i == len(tokens) - 1
                n += 1
            last.append(n - 1)
            self.held[seq] += len(tokens)
        b.n_tokens = n
        status = self.ll.llama_decode(self.ctx, b)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        return [self._argmax(i) for i in last]

    def _argmax(self, i: int) -> int:
        import numpy as np

        logits = np.ctypeslib.as_array(self.ll.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
        return int(np.argmax(logits))

    def clear(self) -> None:
        for seq in range(len(PROMPTS)):
            self.ll.llama_memory_seq_rm(self.mem, seq, -1, -1)
        self.held = [0] * len(PROMPTS)

    def threads(self, n: int) -> None:
        self.ll.llama_set_n_threads(self.ctx, n, n)

    def greedy(self) -> list[list[int]]:
        """The tokens the check compares: the first prompt alone, then the others in batched steps."""
        self.clear()
        prompts = [self.tokenize(p) for p in PROMPTS]
        alone = self.decode([(0, prompts[0])])
        while len(alone) < GREEDY_ALONE:
            alone += self.decode([(0, alone[-1:])])
        together = [[t] for t in self.decode([(s, prompts[s]) for s in range(1, len(PROMPTS))])]
        while len(together[0]) < GREEDY_BATCHED:
            nexts = self.decode([(s + 1, out[-1:]) for s, out in enumerate(together)])
            for out, token in zip(together, nexts, strict=True):
                out.append(token)
        return [alone, *together]

    def timings(self) -> dict[str, float]:
        """Tokens per second, the best of REPEATS: on every usable core a lone turn's prompt chunk and its
        single tokens; on one thread (a shard) the same chunk and steps of a token of BATCH_SEQS sequences."""
        prompt = (self.tokenize(" ".join(PROMPTS)) * 8)[:TURN_PROMPT]

        def best(measure) -> float:
            return min(measure() for _ in range(REPEATS))

        def chunk() -> float:
            self.clear()
            t0 = time.perf_counter()
            self.decode([(0, prompt)])
            return time.perf_counter() - t0

        def steps(n: int, seqs: int) -> float:
            self.clear()
            tokens = self.decode([(s, prompt[: 8 + s]) for s in range(seqs)])
            t0 = time.perf_counter()
            for _ in range(n):
                tokens = self.decode([(s, [t]) for s, t in enumerate(tokens)])
            return time.perf_counter() - t0

        def drafts() -> float:
            """Steps of DRAFT_STEP tokens of one sequence: what verifying lookup's drafts costs."""
            self.clear()
            self.decode([(0, prompt[:8])])
            t0 = time.perf_counter()
            for i in range(DRAFT_STEPS):
                self.decode([(0, prompt[8 + i * DRAFT_STEP : 8 + (i + 1) * DRAFT_STEP])])
            return time.perf_counter() - t0

        out: dict[str, float] = {"cores": self.cores}
        for side, threads in (("lone", self.cores), ("shard", 1)):
            self.threads(threads)
            out[f"{side}_prompt_tps"] = TURN_PROMPT / best(chunk)
            out[f"{side}_draft_tps"] = DRAFT_STEP * DRAFT_STEPS / best(drafts)
        self.threads(self.cores)
        out["lone_decode_tps"] = TURN_REPLY / best(lambda: steps(TURN_REPLY, 1))
        self.threads(1)
        out["shard_decode_tps"] = BATCH_SEQS * BATCH_STEPS / best(lambda: steps(BATCH_STEPS, BATCH_SEQS))
        return out


def _usable_cores() -> int:
    from .cpu import usable_cores

    return usable_cores()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duologue.backends.embedded.probe", description=__doc__)
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--extra-bufts", choices=("on", "off"), required=True)
    parser.add_argument("--time", action="store_true", help="also time a lone turn and a batched shard's steps")
    args = parser.parse_args(argv)
    child = Child(args.gguf, args.extra_bufts == "on")
    result: dict = {"tokens": child.greedy()}
    if args.time:
        result["timing"] = child.timings()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

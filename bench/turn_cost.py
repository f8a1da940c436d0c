"""Turn cost does not grow with the history: a 40-message conversation on the embedded model.

Runs one real duologue conversation (the default embedded engine: a llama.cpp
sequence per participant, prefix reuse, the loop detectors, SQLite commits and
the transcript), then replays exactly the same tokens on a bare llama.cpp
context (the low-level API, no duologue, the same context settings as the
engine, and its thread count picked as the engine picks it: the cores other
programs leave free):

- the raw engine floor: a sequence per participant keeping its cache, so each
  turn evaluates only the new prompt tokens, then the completion one token at a
  time, as decoding must. It runs twice: without sampling (decode only), and
  with sampling: after every decode that yields logits, llama.cpp's sampler
  chain runs on them, built by duologue's own `sampler_chain` with the turn's
  parameters and seed, as duologue samples; the recorded token is fed next
  whatever the chain drew, so the replay stays the same text (the share of
  positions where the chain drew the recorded token is printed as a check).
  The floor with sampling is the like-for-like one: duologue pays for sampling
  too. The two floors run side by side, each on its own context, turn by turn
  in alternating order; each bare context decodes a few tokens before the
  clock starts (its first decodes cost more, and would weigh on one floor);
- the naive loop: one context for both, cleared every turn, re-evaluating the
  whole history (what a loop that just re-sends the chat to a server does).

Like for like: the duologue run uses the weights `auto` picks for a lone
conversation (Q8_0) with lookup decoding off, and the floor and the naive loop
replay on that same weight file, one token at a time as plain decoding does.
What lookup decoding adds on top is rows 1b and 3b.

A message that ended on an end-of-generation token had its last token
evaluated once more (and, with sampling, the end token sampled), as decoding did.

Prints time per turn at the start and at the end, and the ratios, measured side
by side in this one run.

    python bench/turn_cost.py [--messages 40] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from duologue.api import arun_conversation
from duologue.backends.base import Sampling
from duologue.backends.embedded.catalogue import resolve_gguf
from duologue.backends.embedded.common import LlamaSettings
from duologue.backends.embedded.cpu import CoreProbe, usable_cores
from duologue.backends.embedded.guard import model_params
from duologue.backends.embedded.pool import EmbeddedPool, embedded_streams
from duologue.backends.embedded.sampling import sampler_chain
from duologue.backends.embedded.weights import weights_path
from duologue.engine import participant_view, turn_seed
from duologue.spec import ConversationSpec, Participant

MODEL = "local/smollm2"
WEIGHTS = "q8_0"  # what `auto` runs a lone conversation on; the floor replays on the same file


def make_spec(messages: int, max_tokens: int, n_ctx: int) -> ConversationSpec:
    common = dict(max_tokens=max_tokens, context_length=n_ctx, temperature=0.9, weights=WEIGHTS, lookup=False)
    return ConversationSpec(
        participants=[
            Participant(name="a", system="You are a curious philosopher. Ask questions.", seed=11, **common),
            Participant(name="b", system="You are a patient scientist. Explain things.", seed=12, **common),
        ],
        opener="What is the most surprising thing you know?",
        max_messages=messages,
        on_loop="continue",
        on_convergence="continue",  # the same 40 messages every time
    )


class BareContext:
    """A llama.cpp context driven through the low-level API: decode tokens, nothing else."""

    N_BATCH = 512

    def __init__(self, n_ctx: int, n_seqs: int = 1, path: Path | None = None):
        import llama_cpp
        from llama_cpp._internals import LlamaModel
        from llama_cpp._logger import set_verbose

        set_verbose(False)
        self.ll = llama_cpp
        path = path or resolve_gguf(MODEL)
        # Extra buffer types only where the probe found them safe (src/duologue/backends/embedded/guard.py).
        self.model = LlamaModel(path_model=str(path), params=model_params(path), verbose=False)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * n_seqs
        params.n_batch = params.n_ubatch = self.N_BATCH
        params.n_seq_max = n_seqs
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = usable_cores()
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model.model, params)
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(self.N_BATCH, 0, 1)
        self.held: list[list[int]] = [[] for _ in range(n_seqs)]
        # Threads as the engine picks them (runner.py): the cores other programs leave free, looked at
        # before each decode. On a busy machine two OpenMP threads stall on each other many times over.
        self.probe = CoreProbe()
        self.n_threads = params.n_threads

    def tokenize(self, text: str, special: bool) -> list[int]:
        return self.model.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def keep(self, seq: int, n: int) -> None:
        self.ll.llama_memory_seq_rm(self.mem, seq, n, -1)
        del self.held[seq][n:]

    def eval(self, seq: int, tokens: list[int]) -> None:
        b = self.batch
        for start in range(0, len(tokens), self.N_BATCH):
            chunk = tokens[start : start + self.N_BATCH]
            pos = len(self.held[seq])
            for i, t in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0] = t, pos + i, 1, seq
                b.logits[i] = i == len(chunk) - 1
            b.n_tokens = len(chunk)
            n = self.probe.free_cores()
            if n != self.n_threads:
                self.ll.llama_set_n_threads(self.ctx, n, n)
                self.n_threads = n
            if self.ll.llama_decode(self.ctx, b) != 0:
                raise RuntimeError("llama_decode failed")
            self.held[seq].extend(chunk)

    def close(self) -> None:
        self.ll.llama_batch_free(self.batch)
        self.ll.llama_free(self.ctx)
        self.model.close()


def turn_sampling(spec: ConversationSpec, p: Participant, index: int) -> Sampling:
    """The sampling parameters duologue uses for message `index` (as engine.py's _generate builds them)."""
    base = p.seed if p.seed is not None else spec.seed
    return Sampling(
        temperature=p.temperature,
        top_p=p.top_p,
        max_tokens=p.max_tokens,
        seed=turn_seed(base, index),
        extra=dict(p.extra),
    )


class Replay(list):
    """Seconds per generated turn; `agreed`/`sampled`: positions where the chain drew the recorded token."""

    agreed = 0
    sampled = 0
    sample_s = 0.0  # seconds in the sampler chain's calls


def replay(spec: ConversationSpec, messages, naive: bool, sample: bool = False) -> Replay:
    """Time each generated turn of `messages` on a bare context, feeding the recorded tokens.

    naive=False: a sequence per participant that keeps its cache (the floor).
    naive=True: one sequence for both, cleared every turn.
    sample=True: llama.cpp's sampler chain (duologue's, with the turn's parameters and seed) runs
    on the logits of every decode that yields them; the recorded token is fed next all the same.
    """
    return replay_side_by_side(spec, messages, naive, [sample])[0]


def replay_side_by_side(spec: ConversationSpec, messages, naive: bool, samples: list[bool]) -> list[Replay]:
    """`replay` once per entry of `samples`, each on its own bare context, turn by turn in alternating
    order, so that a machine getting busier or quieter meanwhile weighs on them alike."""
    names = [p.name for p in spec.participants]
    path = weights_path(resolve_gguf(MODEL), spec.participants[0].weights)
    bares = [BareContext(spec.participants[0].context_length, 1 if naive else len(names), path=path) for _ in samples]
    results = [Replay() for _ in samples]
    bare0 = bares[0]
    n_vocab = bare0.model.n_vocab()
    try:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = bare0.model.metadata()
        fmt = Jinja2ChatFormatter(
            template=meta["tokenizer.chat_template"],
            eos_token=bare0.model.token_get_text(bare0.model.token_eos()),
            bos_token=bare0.model.token_get_text(bare0.model.token_bos()),
        )
        warm = bare0.tokenize(spec.opener or "Hello.", special=False)
        for bare in bares:  # a context's first decodes cost more (buffers, threads): no turn pays them
            for _ in range(2):
                bare.eval(0, warm)
                bare.eval(0, warm[:1])
                bare.keep(0, 0)
        for i, m in enumerate(messages):
            if m.injected:
                continue
            p = spec.participant(m.speaker)
            seq = 0 if naive else names.index(p.name)
            view = participant_view(p, messages[:i], len(names))
            prompt = bare0.tokenize(
                fmt(messages=[{"role": v.role, "content": v.content} for v in view]).prompt, special=True
            )
            completion = bare0.tokenize(m.content, special=False)
            # Decoding feeds back every sampled token but the last, and the last too when an end token followed.
            fed = completion if m.finish_reason == "stop" else completion[:-1]
            drawn = [*completion, -1]  # what the chain should draw after each decode (-1: an end token)
            order = list(range(len(bares)))
            for j in order if i % 2 == 0 else order[::-1]:
                sampling = turn_sampling(spec, p, m.index) if samples[j] else None
                results[j].append(one_turn(bares[j], seq, naive, prompt, fed, drawn, n_vocab, sampling, results[j]))
    finally:
        for bare in bares:
            bare.close()
    return results


def one_turn(bare: BareContext, seq: int, naive: bool, prompt, fed, drawn, n_vocab, sampling, tally: Replay) -> float:
    """One turn on a bare context (prompt, then the reply token by token, sampling if asked): its seconds."""
    ll = bare.ll
    t0 = time.perf_counter()
    chain = sampler_chain(ll, n_vocab, sampling) if sampling is not None else None
    keep = 0
    if not naive:
        for x, y in zip(bare.held[seq], prompt, strict=False):
            if x != y:
                break
            keep += 1
        keep = min(keep, len(prompt) - 1)  # the last prompt token again, for fresh logits
    bare.keep(seq, keep)
    bare.eval(seq, prompt[keep:])  # the new prompt tokens in one batch
    for k, tok in enumerate([None, *fed]):
        if tok is not None:
            bare.eval(seq, [tok])  # the reply one token at a time
        if chain is not None:
            t = time.perf_counter()
            got = ll.llama_sampler_sample(chain, bare.ctx, -1)
            tally.sample_s += time.perf_counter() - t
            want = drawn[k]
            tally.sampled += 1
            tally.agreed += got == want or (want == -1 and ll.llama_vocab_is_eog(bare.model.vocab, got))
    if chain is not None:
        ll.llama_sampler_free(chain)
    return time.perf_counter() - t0


async def live_run(spec: ConversationSpec, db: Path):
    """The conversation through duologue, timed from after the model is loaded."""
    async with EmbeddedPool(embedded_streams([spec], 1)) as pool:
        warm = pool.backend(MODEL, LlamaSettings(spec.participants[0].context_length))
        await asyncio.to_thread(warm.engine.load)
        await warm.aclose()
        t0 = time.perf_counter()
        run = await arun_conversation(spec, db=db)  # default watchers: the loop detectors run live
        return run, time.perf_counter() - t0


def measure(messages: int = 40, max_tokens: int = 64, n_ctx: int = 4096) -> dict:
    """Everything rows 1 and 2 of `make bench` need, measured side by side.

    The live run goes in a child process: llama.cpp's OpenMP keeps a team of
    threads per calling thread, and a second team in the same process (the
    replays') slows both down.
    """
    from duologue.api import load_run

    spec = make_spec(messages, max_tokens, n_ctx)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "d.db"
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child-live",
                str(db),
                "--messages",
                str(messages),
                "--max-tokens",
                str(max_tokens),
                "--context-length",
                str(n_ctx),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = json.loads(out.stdout.strip().splitlines()[-1])["wall"]
        run = load_run(json.loads(out.stdout.strip().splitlines()[-1])["run"], db=db)
    gen = [m for m in run.messages if not m.injected]
    # The like-for-like floor samples too; the one without sampling beside it, turn by turn.
    bare_floor, floor = replay_side_by_side(spec, run.messages, False, [False, True])
    naive = replay(spec, run.messages, naive=True)
    early, late = gen[3], gen[-1]  # message 5 and the last message (message 1 is the opener)
    return {
        "messages": len(run.messages),
        "completion_tokens": sum(m.completion_tokens for m in gen),
        "wall": wall,
        "live": [m.latency for m in gen],
        "floor": floor,  # with sampling, as duologue does
        "floor_no_sampling": bare_floor,
        "floor_sampler_agreement": floor.agreed / max(1, floor.sampled),
        "floor_sampling_s": floor.sample_s,
        "floor_samples": floor.sampled,
        "naive": naive,
        "evaluated": [m.prompt_tokens - (m.cached_tokens or 0) for m in gen],
        "early_prompt_tokens": early.prompt_tokens,
        "late_prompt_tokens": late.prompt_tokens,
        # Per-token cost of message 5 and the last message (their lengths differ), live and on the floor
        # (with sampling).
        "early_ms_per_token": early.latency / max(1, early.completion_tokens) * 1000,
        "late_ms_per_token": late.latency / max(1, late.completion_tokens) * 1000,
        "floor_early_ms_per_token": floor[3] / max(1, early.completion_tokens) * 1000,
        "floor_late_ms_per_token": floor[-1] / max(1, late.completion_tokens) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--context-length", type=int, default=4096)
    ap.add_argument("--child-live", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_live:
        run, wall = asyncio.run(
            live_run(make_spec(args.messages, args.max_tokens, args.context_length), Path(args.child_live))
        )
        print(json.dumps({"run": run.id, "wall": wall}))
        return
    r = measure(args.messages, args.max_tokens, args.context_length)
    live, floor, naive = r["live"], r["floor"], r["naive"]
    bare_floor = r["floor_no_sampling"]
    print(
        f"conversation: {r['messages']} messages, {r['completion_tokens']} completion tokens, "
        f"last prompt {r['late_prompt_tokens']} tokens"
    )

    def head_tail(xs):
        k = 5
        return statistics.mean(xs[:k]), statistics.mean(xs[-k:])

    rows = [
        ("duologue run (live, as generated)", live),
        ("raw engine floor: same tokens, decode only", bare_floor),
        ("raw engine floor: decode + sampler chain", floor),
        ("naive: one context, whole history each turn", naive),
    ]
    print(f"\n{'':44} {'first 5 turns':>14} {'last 5 turns':>13} {'end/start':>10} {'total':>9}")
    for label, xs in rows:
        s, e = head_tail(xs)
        print(f"{label:44} {s * 1000:11.1f} ms {e * 1000:10.1f} ms {e / s:9.2f}x {sum(xs):8.2f}s")
    print(f"duologue run, wall time (storage, detectors, transcript included): {r['wall']:.2f}s")
    print(f"\nnaive / duologue wall time:             {sum(naive) / r['wall']:.2f}x")
    print(
        f"duologue wall time / raw engine floor:  {r['wall'] / sum(floor):.2f}x with sampling "
        f"({r['wall'] / sum(bare_floor):.2f}x against decode only)"
    )
    print(
        f"the floor's {r['floor_samples']} sampler calls took {r['floor_sampling_s']:.2f}s "
        f"({r['floor_sampling_s'] / max(1, r['floor_samples']) * 1e3:.3f} ms each); the two floors differ by "
        f"{sum(floor) - sum(bare_floor):+.2f}s in all"
    )
    print(
        f"the floor's sampler chain drew the recorded token at {r['floor_sampler_agreement']:.0%} of positions "
        "(the replay re-tokenizes the stored text, so a few differ)"
    )
    slow = r["late_ms_per_token"] / r["early_ms_per_token"]
    raw_slow = r["floor_late_ms_per_token"] / r["floor_early_ms_per_token"]
    print(
        f"message 5 -> {r['messages']}, ms per completion token: {r['early_ms_per_token']:.1f} -> "
        f"{r['late_ms_per_token']:.1f} ({slow:.2f}x); floor {r['floor_early_ms_per_token']:.1f} -> "
        f"{r['floor_late_ms_per_token']:.1f} ({raw_slow:.2f}x)"
    )
    ev = r["evaluated"]
    print(f"prompt tokens evaluated per turn: first 5 {ev[:5]}, last 5 {ev[-5:]}")


if __name__ == "__main__":
    main()

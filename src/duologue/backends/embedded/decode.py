"""The decode loop: what a shared engine does on its runner thread, one step at a time.

Each step packs into one `llama_batch` the last sampled token of every
sequence that is decoding and prompt chunks of those that are prefilling, calls
`llama_decode` once (or once per sequence, where that was measured faster), and
samples each decoding sequence from its own logits with llama.cpp's sampler
chain. Streams, moves and the context's size are explained in engine.py.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BackendError
from ..base import Sampling
from .common import common_prefix
from .lookup import NgramIndex
from .runner import LlamaThread, Steps
from .sampling import sampler_chain

N_BATCH = 512  # tokens per llama_decode call: one per decoding sequence, the rest prompt chunks
STREAM_ALIGN = 256  # llama.cpp pads the cells it attends over to 256; streams are sized alike
PIECE_MAX = 256  # bytes of one token's text; llama.cpp's longest pieces are far shorter
PROBE_EVERY = 32  # decode steps of a size decoded one by one between two timings of it as a batch


@dataclass
class Generation:
    """What one request produced (the backend turns it into a Reply)."""

    text: str
    tokens: list[int]  # the completion's tokens, an end-of-generation token excluded
    finish_reason: str
    prompt_tokens: int
    cached_tokens: int  # prompt tokens already in the sequence's cache, not evaluated again
    evaluated_tokens: int  # prompt tokens evaluated for this request
    ttft: float | None
    latency: float
    drafted: int = 0  # lookup decoding: draft tokens proposed and verified
    accepted: int = 0  # of them, those the model's own samples confirmed


class Seq:
    """One participant's sequence: which stream holds its cache, and the tokens in it."""

    def __init__(self, context_length: int):
        self.context_length = context_length
        self.stream: int | None = None
        self.tokens: list[int] = []  # what the cache holds, position by position
        self.busy = False  # a request of this sequence is running
        self.ngrams: NgramIndex | None = None  # lookup decoding: the participant's history, indexed

    def on_stream(self) -> int:
        """The stream of a sequence whose request is placed: it always has one."""
        assert self.stream is not None, "a placed request's sequence has a stream"
        return self.stream


@dataclass(eq=False)
class Request:
    seq: Seq
    prompt: list[int]
    sampling: Sampling
    emit: Callable[[str], None]
    finish: Callable[[Generation | BaseException], None]
    t0: float
    feed: list[int] = field(default_factory=list)  # tokens still to evaluate before the next sample
    sampler: object = None
    cached: int = 0
    generated: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    ttft: float | None = None
    cancelled: bool = False
    placed: bool = False
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    lookup: bool = False  # draft tokens from the history and verify them (lookup.py)
    indexed: bool = False  # the sequence's n-gram index holds this request's history (lookup.py)
    drafted: int = 0
    accepted: int = 0


# A request's part of one decode step: the tokens fed, and lookup decoding's drafts after them.
Chunk = tuple[Request, list[int], list[int]]


class DecodeLoop:
    """The runner-thread half of SharedLlamaEngine (engine.py), which sets up what these methods share."""

    # Set by SharedLlamaEngine.__init__ and load() (engine.py).
    path: Path
    threads: int | None
    _min_streams: int
    _runner: LlamaThread
    _lock: threading.Lock  # guards _inbox and _seqs
    _inbox: deque[tuple[str, Any]]  # ("submit", Request), ("release", Seq) or ("close", None)
    _seqs: list[Seq]
    _shut: threading.Event
    siblings: list[Steps]  # the other one-thread shards of its model in a pool (LlamaThread.threads_for)
    # llama.cpp through llama-cpp-python's ctypes bindings: the module, its LlamaModel, and the
    # context, memory and batch pointers, all untyped ctypes objects.
    _llama: Any
    _model: Any
    _mem: Any

    def __init__(self) -> None:
        # The runner thread's state only.
        self._ctx: Any = None
        self._n_threads = 0
        self._batch: Any = None
        self._n_streams = 0
        self._stream_len = 0
        self._occupant: list[Seq | None] = []
        self._active: list[Request] = []
        self._waiting: deque[Request] = deque()
        self._piece_buf = ctypes.create_string_buffer(PIECE_MAX)
        # borrowed_steps: those run with the cores of sibling shards (LlamaThread.threads_for)
        self.stats = {"steps": 0, "recreated": 0, "moves": 0, "decoded_tokens": 0, "borrowed_steps": 0}
        self._call_time: dict[int, float] = {}  # seconds per llama_decode of n single tokens (moving average)
        self._decisions: dict[int, int] = {}

    def _has_work(self) -> bool:  # called with the runner's lock held
        return bool(self._inbox or self._active or any(r.cancelled for r in self._waiting))

    def tick(self) -> bool:
        """Take in what was sent, then run one step. False once the engine is shut."""
        with self._lock:
            inbox = list(self._inbox)
            self._inbox.clear()
        for kind, item in inbox:
            if kind == "close":
                self._shutdown()
                return False
            if kind == "submit":
                self._waiting.append(item)
            else:
                self._forget(item)
        self._drop_cancelled()
        if self._waiting or self._active:
            try:
                if inbox or self._ctx is None:
                    # Sized after this round's releases: a conversation ending as the next one starts
                    # does not count twice. Only what arrives can need more room: a newly leased
                    # sequence's first request comes through the inbox.
                    with self._lock:
                        n_seqs = len(self._seqs)
                        stream_len = max((s.context_length for s in self._seqs), default=0)
                    self._fit(n_seqs, stream_len)
                self._admit()
                if self._active:
                    self._set_threads()
                    self._step()
            except Exception as err:  # a failed decode fails the requests in it, not the engine
                self.fail_all(BackendError(f"{self.path.name}: {type(err).__name__}: {err}"))
        return True

    def _set_threads(self) -> None:
        n = self._runner.threads_for(self.threads, self.siblings)
        if n != self._n_threads:
            self._llama.llama_set_n_threads(self._ctx, n, n)
            self._n_threads = n
            self._call_time.clear()  # measured with another thread count

    def _fit(self, n_seqs: int, stream_len: int) -> None:
        """(Re)create the context when more sequences are leased, or a longer one, than it holds."""
        stream_len = max(STREAM_ALIGN, -(-stream_len // STREAM_ALIGN) * STREAM_ALIGN)
        if self._ctx is not None and n_seqs <= self._n_streams and stream_len <= self._stream_len:
            return
        llama_cpp = self._llama
        n_streams = max(n_seqs, self._min_streams, self._n_streams)
        if self._ctx is not None and n_seqs > self._n_streams:
            # Grow in steps, so that conversations starting one by one do not rebuild it every time.
            n_streams = max(n_streams, 2 * self._n_streams)
        most = llama_cpp.llama_max_parallel_sequences()
        if n_seqs > most:
            raise BackendError(f"{self.path.name}: {n_seqs} participants at once, llama.cpp holds at most {most}")
        n_streams = min(n_streams, most)
        stream_len = max(stream_len, self._stream_len)
        if self._ctx is not None:
            self.stats["recreated"] += 1
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
            # The caches go with it: each sequence starts empty, a running request re-evaluates what it had.
            for r in self._active:
                r.feed[:0] = r.seq.tokens
                r.placed = False
            with self._lock:
                seqs = list(self._seqs)
            for seq in seqs:
                seq.stream, seq.tokens = None, []
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_streams * stream_len
        params.n_batch = params.n_ubatch = min(N_BATCH, params.n_ctx)
        params.n_seq_max = n_streams
        params.kv_unified = False  # a stream per sequence: attention covers its own cells only
        params.n_threads = params.n_threads_batch = self._n_threads = self.threads or self._runner.cores
        # Flash attention: measured on 2 cores, 8 sequences decode at 243 tokens/s with it against 205
        # without (16: 306 against 239), one alone at 138 against 133.
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.no_perf = True
        ctx = llama_cpp.llama_init_from_model(self._model.model, params)
        if ctx is None:
            raise BackendError(f"{self.path.name}: cannot create a context of {n_streams} x {stream_len} tokens")
        if self._batch is None:
            self._batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
        self._ctx, self._mem = ctx, llama_cpp.llama_get_memory(ctx)
        self._n_streams, self._stream_len = n_streams, llama_cpp.llama_n_ctx_seq(ctx)
        self._occupant = [None] * n_streams
        for r in self._active:
            self._place(r)

    def _forget(self, seq: Seq) -> None:
        for r in [*self._active, *self._waiting]:
            if r.seq is seq:
                r.cancelled = True
        self._drop_cancelled()
        if seq.stream is not None:
            self._llama.llama_memory_seq_rm(self._mem, seq.stream, -1, -1)
            self._occupant[seq.stream] = None
            seq.stream, seq.tokens = None, []
        with self._lock:
            if seq in self._seqs:
                self._seqs.remove(seq)

    def _drop_cancelled(self) -> None:
        for r in [r for r in self._active if r.cancelled]:
            self._end(r, "cancelled")
        for r in [r for r in self._waiting if r.cancelled]:
            self._waiting.remove(r)
            r.finish(asyncio.CancelledError())

    def _admit(self) -> None:
        """Start the waiting requests whose sequence is not still running an earlier one."""
        for r in list(self._waiting):
            if r.seq.busy:
                continue
            self._waiting.remove(r)
            r.seq.busy = True
            r.sampler = sampler_chain(self._llama, self._model.n_vocab(), r.sampling)
            if r.lookup and r.seq.ngrams is None:
                r.seq.ngrams = NgramIndex()
            self._active.append(r)
            self._place(r)

    def _place(self, r: Request) -> None:
        """Give the request a stream next to the running ones, and keep what its cache shares with the prompt."""
        llama_cpp, seq = self._llama, r.seq
        running = {a.seq.on_stream() for a in self._active if a.placed}
        own = seq.stream
        # The stream that leaves the running ones in the fewest blocks; the own stream on a tie (no copy).
        target = min(
            (s for s in range(self._n_streams) if s not in running), key=lambda s: (_runs(running | {s}), s != own, s)
        )
        if target != own:
            occupant = self._occupant[target]
            if occupant is not None:  # an idle sequence's cache: keep it on a free stream if there is one
                free = next((s for s in range(self._n_streams) if self._occupant[s] is None), None)
                if free is not None:
                    self._move(occupant, free)
                else:
                    llama_cpp.llama_memory_seq_rm(self._mem, target, -1, -1)
                    occupant.stream, occupant.tokens = None, []
                    self._occupant[target] = None
            if own is not None:
                self._move(seq, target)
            else:
                seq.stream, seq.tokens = target, []
                self._occupant[target] = seq
        if not r.feed:  # a new request (not one re-placed after the context was rebuilt)
            keep = common_prefix(seq.tokens, r.prompt)
            keep = min(keep, len(r.prompt) - 1)  # the last prompt token is evaluated again for fresh logits
            llama_cpp.llama_memory_seq_rm(self._mem, seq.stream, keep, -1)
            del seq.tokens[keep:]
            r.cached = keep
            r.feed = r.prompt[keep:]
        r.placed = True

    def _move(self, seq: Seq, dst: int) -> None:
        # A cross-stream copy is queued and done by llama.cpp before the next decode.
        src = seq.on_stream()
        self._llama.llama_memory_seq_cp(self._mem, src, dst, -1, -1)
        self._llama.llama_memory_seq_rm(self._mem, src, -1, -1)
        self._occupant[src], self._occupant[dst] = None, seq
        seq.stream = dst
        self.stats["moves"] += 1

    def _step(self) -> None:
        """A token for each decoding request, then prompt chunks, in stream order: one llama_decode,
        or (only single tokens, and measured faster) one per request."""
        budget = N_BATCH
        chunks: list[Chunk] = []
        # Decoding requests first, so a long prompt never holds them back for more than a step.
        for r in sorted(self._active, key=lambda r: len(r.feed)):
            take = r.feed[:budget]
            if take:
                drafts = self._drafts(r, budget - len(take)) if len(take) == len(r.feed) else []
                chunks.append((r, take, drafts))
                budget -= len(take) + len(drafts)
            if budget == 0:
                break
        # llama.cpp puts sequences in one micro-batch only when their streams follow each other in order.
        chunks.sort(key=lambda c: c[0].seq.on_stream())
        decoding = len(chunks) > 1 and all(len(take) == 1 and not drafts for _, take, drafts in chunks)
        if decoding and self._one_by_one(len(chunks)):
            for chunk in chunks:
                self._decode([chunk], timed=True)
        else:
            single = len(chunks) == 1 and len(chunks[0][1]) == 1 and not chunks[0][2]
            self._decode(chunks, timed=decoding or single)

    def _drafts(self, r: Request, room: int) -> list[int]:
        """Lookup decoding's drafts for a request about to decode its next token (lookup.py)."""
        if not r.lookup or r.seq.ngrams is None:
            return []
        ngrams, seq = r.seq.ngrams, r.seq
        # The history the drafts continue: the prompt and what was sampled. Compared whole once per
        # request (its prompt may differ from what the cache held); after that it only grows.
        if r.indexed:
            ngrams.follow(seq.tokens, r.feed)
        else:
            ngrams.sync(seq.tokens + r.feed)
            r.indexed = True
        # Never past the reply's length, nor the stream.
        room = min(room, r.sampling.max_tokens - len(r.generated), self._stream_len - len(seq.tokens) - len(r.feed))
        return ngrams.draft(room)

    def _one_by_one(self, n: int) -> bool:
        """Whether n single-token sequences decode faster one call each than in one batch.

        On some CPUs and weight types a batch of a few tokens costs as much as
        that many single tokens or more (SmolLM2's Q4_1 on 2 cores: 2 tokens
        take 2.1 times one token's time, 4 take 3.5 times, 8 take 4.7 times).
        So the engine keeps the time it measured per call for each batch size
        and decodes one by one where that was faster; a batch is timed again
        every PROBE_EVERY decisions, in case the machine got busier or quieter.
        """
        one, batch = self._call_time.get(1), self._call_time.get(n)
        if one is None or batch is None:
            return False  # batch (and so measure it); single calls get measured when one sequence decodes
        self._decisions[n] = self._decisions.get(n, 0) + 1
        if self._decisions[n] % PROBE_EVERY == 0:
            return False
        return n * one < batch

    def _decode(self, chunks: list[Chunk], timed: bool) -> None:
        """One llama_decode of these chunks, then a sample for each request whose feed is done."""
        llama_cpp, b = self._llama, self._batch
        n = 0
        outputs: list[tuple[Request, int, list[int]]] = []
        for r, take, drafts in chunks:
            seq, pos = r.seq, len(r.seq.tokens)
            last = len(take) == len(r.feed)
            tokens = take + drafts
            for i, token in enumerate(tokens):
                b.token[n] = token
                b.pos[n] = pos + i
                b.n_seq_id[n] = 1
                b.seq_id[n][0] = seq.stream
                b.logits[n] = last and i >= len(take) - 1  # the last fed token and every draft
                n += 1
            if last:
                outputs.append((r, n - 1 - len(drafts), drafts))
        b.n_tokens = n
        t0 = time.perf_counter()
        status = llama_cpp.llama_decode(self._ctx, b)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        if timed:  # single-token sequences only: the time of a call of n of them
            took = time.perf_counter() - t0
            before = self._call_time.get(n)
            self._call_time[n] = took if before is None else before + 0.2 * (took - before)
        self.stats["steps"] += 1
        self.stats["borrowed_steps"] += self.threads is not None and self._n_threads > self.threads
        self.stats["decoded_tokens"] += n
        for r, take, drafts in chunks:
            r.seq.tokens.extend(take + drafts)
            del r.feed[: len(take)]
        for r, index, drafts in outputs:
            if drafts:
                self._verify(r, index, drafts)
            else:
                self._sample(r, index)

    def _verify(self, r: Request, index: int, drafts: list[int]) -> None:
        """Sample position by position, accepting drafts while the sample equals them (lookup.py); the
        drafts after the first mismatch leave the cache."""
        seq = r.seq
        start = len(seq.tokens) - len(drafts)  # where the first draft sits in the cache
        accepted = 0
        r.drafted += len(drafts)  # counted now: a request ending in this loop reports them
        for j, draft in enumerate(drafts):
            token = self._sample(r, index + j)
            if token != draft or r not in self._active:
                break
            accepted += 1
            r.accepted += 1
            r.feed = []  # already in the cache: its logits are next
        else:
            self._sample(r, index + len(drafts))  # every draft held: one more token from the last one's logits
        if accepted < len(drafts):
            self._llama.llama_memory_seq_rm(self._mem, seq.on_stream(), start + accepted, -1)
            del seq.tokens[start + accepted :]
        if seq.ngrams is not None:
            seq.ngrams.update(len(drafts), accepted)

    def _sample(self, r: Request, index: int) -> int | None:
        """Sample the request's next token from the logits at `index`; None when the request ended."""
        llama_cpp = self._llama
        token = llama_cpp.llama_sampler_sample(r.sampler, self._ctx, index)
        if r.cancelled:
            self._end(r, "cancelled")
            return None
        if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
            self._end(r, "stop")
            return None
        r.generated.append(token)
        text = r.decoder.decode(self._piece(token))
        if text:
            if r.ttft is None:
                r.ttft = time.perf_counter() - r.t0
            r.pieces.append(text)
            r.emit(text)
        if len(r.generated) >= r.sampling.max_tokens:
            self._end(r, "length")
        else:
            r.feed = [token]
        return token

    def _piece(self, token: int) -> bytes:
        n = self._llama.llama_token_to_piece(self._model.vocab, token, self._piece_buf, PIECE_MAX, 0, False)
        return self._piece_buf.raw[:n] if n >= 0 else b""

    def _end(self, r: Request, finish: str) -> None:
        self._active.remove(r)
        r.seq.busy = False
        self._llama.llama_sampler_free(r.sampler)
        if finish == "cancelled":
            r.finish(asyncio.CancelledError())
            return
        tail = r.decoder.decode(b"", final=True)
        if tail:
            r.pieces.append(tail)
            r.emit(tail)
        r.finish(
            Generation(
                text="".join(r.pieces),
                tokens=r.generated,
                finish_reason=finish,
                prompt_tokens=len(r.prompt),
                cached_tokens=r.cached,
                evaluated_tokens=len(r.prompt) - r.cached,
                ttft=r.ttft,
                latency=time.perf_counter() - r.t0,
                drafted=r.drafted,
                accepted=r.accepted,
            )
        )

    def fail_all(self, err: BaseException) -> None:
        for r in list(self._active):
            self._active.remove(r)
            r.seq.busy = False
            # What the failed decode left in the cache is unknown: the sequence starts over.
            if r.seq.stream is not None and self._ctx is not None:
                self._llama.llama_memory_seq_rm(self._mem, r.seq.stream, -1, -1)
            r.seq.tokens = []
            if r.sampler is not None:
                self._llama.llama_sampler_free(r.sampler)
            r.finish(err)
        while self._waiting:
            self._waiting.popleft().finish(err)

    def _shutdown(self) -> None:
        self.fail_all(BackendError(f"{self.path.name}: the engine was closed"))
        with self._lock:
            late = list(self._inbox)
            self._inbox.clear()
        for kind, item in late:
            if kind == "submit":
                item.finish(BackendError(f"{self.path.name}: the engine was closed"))
        if self._ctx is not None:
            self._llama.llama_free(self._ctx)
            self._ctx = None
        if self._batch is not None:
            self._llama.llama_batch_free(self._batch)
            self._batch = None
        self._shut.set()


def _runs(streams: set[int]) -> int:
    """How many blocks of consecutive streams: llama.cpp decodes each block as its own micro-batch."""
    return sum(1 for s in streams if s - 1 not in streams)

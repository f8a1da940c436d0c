"""The embedded engine, shared: one llama context, a sequence per participant, batched decode steps.

A small model on a CPU evaluates tokens far faster in a batch than one at a
time (SmolLM2-135M on 2 cores: about 200 tokens/s against 85), so when several
conversations run at once their next tokens are decoded together.
`SharedLlamaEngine` owns one model and one llama context whose KV cache has a
stream per sequence, and one worker thread that runs the decode loop. Every
participant's backend (`BatchedLlamaBackend`) leases a sequence for its
lifetime and keeps the tokens that sequence holds, so a turn evaluates only
the tokens added since the participant's last turn (prefix reuse, as with
`LlamaCppBackend`). Each step the worker packs into one `llama_batch` the last
sampled token of every sequence that is decoding and prompt chunks of those
that are prefilling, calls `llama_decode` once, and samples each decoding
sequence from its own logits with llama.cpp's sampler chain (the same chain and
seed as `Llama.generate`, so a lone request samples exactly as the one-Llama-
per-participant backend does).

Why a stream per sequence (`kv_unified=False`): with one unified KV buffer every
token attends over the cells of all sequences (masked), so a step costs in
proportion to everyone's history together. With a stream each, attention only
covers the sequence's own cells. The price is a llama.cpp rule: one micro-batch
holds only sequences on consecutive streams, in increasing order, so decoding
sequences on streams 0, 2, 4 would run as three micro-batches, no faster than
one after another. The worker therefore places a request, when it starts, on
the lowest stream no running request uses, moving caches there with
`llama_memory_seq_cp` (a copy of the stream, milliseconds) when that keeps the
running set in one block. Memory: the context holds one stream per leased
sequence (plus one spare when several conversations share it, for those
moves), each as long as the longest participant context; it is recreated
larger when more sequences are leased (the caches are then rebuilt from their
tokens).

Not every batch is faster than its tokens one by one: on 2 cores with
SmolLM2's Q4_1 weights, 2 sequences decoded together take as long as 2 apart,
and batching 8 gains 1.5-1.7x (`python bench/decode_ceiling.py`). So an engine
times its calls and decodes single tokens one call each where that measured
faster (`_one_by_one`), and a pool running several conversations splits them
over one-thread shards, one per core, which decode in parallel without OpenMP
barriers (see EmbeddedPool).

Arithmetic: llama.cpp's CPU kernels compute each token's row on its own, and
with a stream per sequence the attention of a sequence sees only its own cells,
so at temperature 0 a batched sequence gives the tokens a lone one gives.
Measured with tests/backends/test_llamacpp_batched.py (8 prompts, 64 tokens
each, greedy, decoded together against each decoded alone): every token was
equal (llama-cpp-python 0.3.36, 2026-11-26). Should
a later llama.cpp pick batch-size-dependent kernels (repacked weights, BLAS),
sequences could drift apart after a near-tie between two tokens; that test
measures and prints the first diverging position.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import os
import threading
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from ..errors import BackendError
from ..records import utcnow
from .base import ChatMessage, ContextFullError, OnEvent, Reply, Sampling, TextDelta, Usage
from .llamacpp import _STDIO_SWAP_LOCK, LlamaSettings, _common_prefix, resolve_gguf

if TYPE_CHECKING:
    from ..spec import ConversationSpec

N_BATCH = 512  # tokens per llama_decode call: one per decoding sequence, the rest prompt chunks
STREAM_ALIGN = 256  # llama.cpp pads the cells it attends over to 256; streams are sized alike
PIECE_MAX = 256  # bytes of one token's text; llama.cpp's longest pieces are far shorter
PENALTY_LAST_N = 64  # the window of repeat_penalty, as llama-cpp-python's default
PROBE_INTERVAL = 0.5  # seconds between looks at how busy the other programs keep the CPUs
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


class _Seq:
    """One participant's sequence: which stream holds its cache, and the tokens in it."""

    def __init__(self, context_length: int):
        self.context_length = context_length
        self.stream: int | None = None
        self.tokens: list[int] = []  # what the cache holds, position by position
        self.busy = False  # a request of this sequence is running


@dataclass(eq=False)
class _Request:
    seq: _Seq
    prompt: list[int]
    sampling: Sampling
    emit: Callable[[str], None]
    finish: Callable[["Generation | BaseException"], None]
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


class _LlamaThread:
    """A thread that runs llama.cpp's decoding for its engines, one step each in turn.

    llama.cpp's CPU backend runs on OpenMP, which keeps a team of threads for
    each thread that calls it. Two callers taking turns (two engines, or the
    executor threads the older backend runs in) leave two teams getting in each
    other's way: measured on 2 cores, decoding in turns from two threads ran at
    70 tokens/s against 170 from one. So every engine's steps run here, in turn.

    It also picks how many threads llama.cpp uses. OpenMP threads wait for each
    other at every operation, so when other programs keep a core busy a step
    with two threads stalls whenever one is descheduled (measured with one other
    llama.cpp process: 31 tokens/s on two threads, 66 on one, and single steps of
    seconds). Engines without a fixed thread count use the cores the others leave.
    All such engines share the process's one runner (`llama_thread()`).

    A pool that splits conversations over one-thread shards (see EmbeddedPool)
    gives each shard a private runner: one-thread steps use no OpenMP team, so
    shards on different cores do not get in each other's way. A private runner's
    thread ends with its engine.
    """

    def __init__(self, private: bool = False):
        self.private = private
        self.lock = threading.Lock()  # guards every engine's inbox and leases too: one lock, no ordering issues
        self.wake = threading.Condition(self.lock)
        self._engines: list[SharedLlamaEngine] = []
        self.cores = usable_cores()
        self._free = self.cores
        self._probe: tuple[float, float, float] | None = None  # (when, machine busy s, own CPU s)
        self._thread: threading.Thread | None = None  # started by the first engine that loads

    def add(self, engine: "SharedLlamaEngine") -> None:
        with self.lock:
            if engine not in self._engines:
                self._engines.append(engine)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="duologue-llama", daemon=True)
                self._thread.start()

    def free_cores(self) -> int:
        """The cores other programs have left idle lately (Linux; elsewhere all of them)."""
        now = time.monotonic()
        if self._probe is not None and now - self._probe[0] < PROBE_INTERVAL:
            return self._free
        busy = _machine_busy_seconds()
        own = sum(os.times()[:2])
        if busy is None:
            return self._free
        if self._probe is not None:
            when, busy0, own0 = self._probe
            others = ((busy - busy0) - (own - own0)) / (now - when)
            self._free = max(1, self.cores - int(others + 0.5))
        self._probe = (now, busy, own)
        return self._free

    def _run(self) -> None:
        while True:
            with self.wake:
                while not (ready := [e for e in self._engines if e._has_work()]):
                    self.wake.wait()
            for engine in ready:
                try:
                    alive = engine._tick()
                except Exception as err:  # pragma: no cover - one engine's bug must not stop the others
                    engine._fail_all(BackendError(f"{engine.path.name}: {type(err).__name__}: {err}"))
                    alive = True
                if not alive:
                    with self.lock:
                        self._engines.remove(engine)
                        if self.private and not self._engines:
                            return


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _machine_busy_seconds() -> float | None:
    """CPU seconds all programs have used since boot, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


_llama_thread: _LlamaThread | None = None
_llama_thread_lock = threading.Lock()


def llama_thread() -> _LlamaThread:
    # Process-wide on purpose: so is OpenMP's thread team (see _LlamaThread).
    global _llama_thread
    with _llama_thread_lock:
        if _llama_thread is None:
            _llama_thread = _LlamaThread()
        return _llama_thread


class SharedLlamaEngine:
    """One GGUF model and one llama context, decoding the requests of many sequences together."""

    def __init__(self, path: Path, threads: int | None = None, streams: int = 1, runner: _LlamaThread | None = None):
        self.path = Path(path)
        self.threads = threads  # None: as many as the other programs leave free (see _LlamaThread)
        self._min_streams = max(1, streams)
        self._runner = runner or llama_thread()
        self._lock = self._runner.lock  # guards _inbox and _seqs
        self._load_lock = threading.Lock()
        self._inbox: deque[tuple[str, object]] = deque()
        self._seqs: list[_Seq] = []
        self._llama = None  # the llama_cpp module, bound when the model loads
        self._model = None  # llama_cpp._internals.LlamaModel
        self._formatter = None
        self._started = False  # the runner has been told about this engine
        self._closed = False
        self._shut = threading.Event()  # the runner has freed the context
        # The runner thread's state only from here on.
        self._ctx = None
        self._n_threads = 0
        self._batch = None
        self._n_streams = 0
        self._stream_len = 0
        self._occupant: list[_Seq | None] = []
        self._active: list[_Request] = []
        self._waiting: deque[_Request] = deque()
        self._piece_buf = ctypes.create_string_buffer(PIECE_MAX)
        self.stats = {"steps": 0, "recreated": 0, "moves": 0, "decoded_tokens": 0}
        self._call_time: dict[int, float] = {}  # seconds per llama_decode of n single tokens (moving average)
        self._decisions: dict[int, int] = {}

    # -- what other threads call ---------------------------------------------------

    def load(self) -> None:
        """Load the model (once; blocking, so off the event loop) and start the worker."""
        if self._model is not None and not self._closed:
            return
        with self._load_lock:  # not self._lock: leasing (on the event loop) must not wait for a load
            if self._closed:
                raise BackendError(f"{self.path.name}: the engine is closed")
            if self._model is not None:
                return
            import llama_cpp
            from llama_cpp._internals import LlamaModel
            from llama_cpp._logger import set_verbose
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            set_verbose(False)  # what Llama(verbose=False) does: llama.cpp's log stays quiet
            llama_cpp.llama_backend_init()
            params = llama_cpp.llama_model_default_params()
            try:
                with _STDIO_SWAP_LOCK:
                    model = LlamaModel(path_model=str(self.path), params=params, verbose=False)
            except (ValueError, RuntimeError) as err:
                raise BackendError(f"cannot load {self.path.name}: {err}") from None
            meta = model.metadata()
            template = meta.get("tokenizer.chat_template")
            if not template:
                model.close()
                raise BackendError(f"{self.path.name} has no chat template")
            eos = model.token_get_text(model.token_eos()) if model.token_eos() != -1 else ""
            bos = model.token_get_text(model.token_bos()) if model.token_bos() != -1 else ""
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
            with self._lock:
                self._llama, self._model, self._started = llama_cpp, model, True
            self._runner.add(self)

    def prompt_tokens(self, messages: list[ChatMessage]) -> list[int]:
        """A participant's view rendered with the GGUF's chat template, as tokens (as LlamaCppBackend does)."""
        self.load()
        model, formatter = self._model, self._formatter
        if model is None:
            raise BackendError(f"{self.path.name}: the engine is closed")
        rendered = formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        # The template writes any BOS itself, as llama-cpp-python's chat handler assumes.
        return model.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True)

    @property
    def kv_bytes(self) -> int:
        """The size of the KV cache the context holds now (f16 keys and values, every stream)."""
        if self._model is None:
            return 0
        import llama_cpp

        m = self._model.model
        per_token = 2 * 2 * llama_cpp.llama_model_n_layer(m) * (
            llama_cpp.llama_model_n_embd(m) // llama_cpp.llama_model_n_head(m) * llama_cpp.llama_model_n_head_kv(m)
        )
        return self._n_streams * self._stream_len * per_token

    @property
    def leased(self) -> int:
        """Sequences leased now (the participants using this engine)."""
        return len(self._seqs)

    def lease(self, context_length: int) -> _Seq:
        seq = _Seq(context_length)
        with self._lock:
            self._seqs.append(seq)
        return seq

    def release(self, seq: _Seq) -> None:
        with self._lock:
            if not self._started or self._closed:  # nothing of it is in a context: just forget it
                if seq in self._seqs:
                    self._seqs.remove(seq)
                return
        self._send("release", seq)

    async def generate(self, seq: _Seq, prompt: list[int], sampling: Sampling,
                       on_text: Callable[[str], None] | None = None, t0: float | None = None) -> Generation:
        """Run one request on `seq`; cancelling the caller stops it before the next step."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def settle(result) -> None:
            if future.done():
                return
            if isinstance(result, asyncio.CancelledError):
                future.cancel()
            elif isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        def call(fn, *args) -> None:
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the caller's loop is gone (its run ended): nobody is listening
                pass

        on_text = on_text or (lambda text: None)
        request = _Request(seq, list(prompt), sampling, lambda text: call(on_text, text),
                           lambda result: call(settle, result), t0 if t0 is not None else time.perf_counter())
        if self._model is None:
            await asyncio.to_thread(self.load)
        self._send("submit", request)
        try:
            return await future
        except asyncio.CancelledError:
            request.cancelled = True  # the runner drops it before its next step
            with self._lock:
                self._runner.wake.notify()
            raise

    def close(self) -> None:
        """Stop the worker and free the context and the model; requests still running fail."""
        with self._load_lock:  # a load in progress finishes first
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                started = self._started
            if started:
                self._send("close", None, force=True)
                self._shut.wait()
            if self._model is not None:
                with _STDIO_SWAP_LOCK:
                    self._model.close()
                self._model = None

    def _send(self, kind: str, item, force: bool = False) -> None:
        with self._lock:
            if self._closed and not force:
                if kind == "submit":
                    item.finish(BackendError(f"{self.path.name}: the engine is closed"))
                return
            self._inbox.append((kind, item))
            self._runner.wake.notify()

    # -- on the runner thread ----------------------------------------------------------

    def _has_work(self) -> bool:  # called with the runner's lock held
        return bool(self._inbox or self._active or any(r.cancelled for r in self._waiting))

    def _tick(self) -> bool:
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
                self._fail_all(BackendError(f"{self.path.name}: {type(err).__name__}: {err}"))
        return True

    def _set_threads(self) -> None:
        n = self.threads or self._runner.free_cores()
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
            for seq in self._seqs_snapshot():
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

    def _seqs_snapshot(self) -> list[_Seq]:
        with self._lock:
            return list(self._seqs)

    def _forget(self, seq: _Seq) -> None:
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
            r.sampler = self._sampler(r.sampling)
            self._active.append(r)
            self._place(r)

    def _place(self, r: _Request) -> None:
        """Give the request a stream next to the running ones, and keep what its cache shares with the prompt."""
        llama_cpp, seq = self._llama, r.seq
        running = {a.seq.stream for a in self._active if a.placed}
        own = seq.stream
        # The stream that leaves the running ones in the fewest blocks; the own stream on a tie (no copy).
        target = min((s for s in range(self._n_streams) if s not in running),
                     key=lambda s: (_runs(running | {s}), s != own, s))
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
            keep = _common_prefix(seq.tokens, r.prompt)
            keep = min(keep, len(r.prompt) - 1)  # the last prompt token is evaluated again for fresh logits
            llama_cpp.llama_memory_seq_rm(self._mem, seq.stream, keep, -1)
            del seq.tokens[keep:]
            r.cached = keep
            r.feed = r.prompt[keep:]
        r.placed = True

    def _move(self, seq: _Seq, dst: int) -> None:
        # A cross-stream copy is queued and done by llama.cpp before the next decode.
        src = seq.stream
        self._llama.llama_memory_seq_cp(self._mem, src, dst, -1, -1)
        self._llama.llama_memory_seq_rm(self._mem, src, -1, -1)
        self._occupant[src], self._occupant[dst] = None, seq
        seq.stream = dst
        self.stats["moves"] += 1

    def _sampler(self, s: Sampling):
        """The chain llama-cpp-python's Llama.generate builds, so equal logits give equal tokens."""
        llama_cpp = self._llama
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda smpl: llama_cpp.llama_sampler_chain_add(chain, smpl)  # noqa: E731
        extra = s.extra
        repeat = float(extra.get("repeat_penalty", 1.0))
        if repeat != 1.0:
            add(llama_cpp.llama_sampler_init_penalties(self._model.n_vocab(), PENALTY_LAST_N, repeat, 0.0, 0.0))
        seed = s.seed if s.seed is not None else 0
        if s.temperature == 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_top_k(int(extra.get("top_k", 40))))
            add(llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
            add(llama_cpp.llama_sampler_init_min_p(float(extra.get("min_p", 0.05)), 1))
            add(llama_cpp.llama_sampler_init_temp(s.temperature))
            add(llama_cpp.llama_sampler_init_dist(seed))
        return chain

    def _step(self) -> None:
        """A token for each decoding request, then prompt chunks, in stream order: one llama_decode,
        or (only single tokens, and measured faster) one per request."""
        budget = N_BATCH
        chunks: list[tuple[_Request, list[int]]] = []
        # Decoding requests first, so a long prompt never holds them back for more than a step.
        for r in sorted(self._active, key=lambda r: len(r.feed)):
            take = r.feed[:budget]
            if take:
                chunks.append((r, take))
                budget -= len(take)
            if budget == 0:
                break
        # llama.cpp puts sequences in one micro-batch only when their streams follow each other in order.
        chunks.sort(key=lambda c: c[0].seq.stream)
        decoding = len(chunks) > 1 and all(len(take) == 1 for _, take in chunks)
        if decoding and self._one_by_one(len(chunks)):
            for chunk in chunks:
                self._decode([chunk], timed=True)
        else:
            self._decode(chunks, timed=decoding or len(chunks) == 1 and len(chunks[0][1]) == 1)

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

    def _decode(self, chunks: list[tuple[_Request, list[int]]], timed: bool) -> None:
        """One llama_decode of these chunks, then a sample for each request whose feed is done."""
        llama_cpp, b = self._llama, self._batch
        n = 0
        outputs: list[tuple[_Request, int]] = []
        for r, take in chunks:
            seq, pos = r.seq, len(r.seq.tokens)
            last = len(take) == len(r.feed)
            for i, token in enumerate(take):
                b.token[n] = token
                b.pos[n] = pos + i
                b.n_seq_id[n] = 1
                b.seq_id[n][0] = seq.stream
                b.logits[n] = last and i == len(take) - 1
                n += 1
            if last:
                outputs.append((r, n - 1))
        b.n_tokens = n
        t0 = time.perf_counter()
        status = llama_cpp.llama_decode(self._ctx, b)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
        if timed:  # single-token sequences only: the time of a call of n of them
            took = time.perf_counter() - t0
            last = self._call_time.get(n)
            self._call_time[n] = took if last is None else last + 0.2 * (took - last)
        self.stats["steps"] += 1
        self.stats["decoded_tokens"] += n
        for r, take in chunks:
            r.seq.tokens.extend(take)
            del r.feed[: len(take)]
        for r, index in outputs:
            self._sample(r, index)

    def _sample(self, r: _Request, index: int) -> None:
        llama_cpp = self._llama
        token = llama_cpp.llama_sampler_sample(r.sampler, self._ctx, index)
        if r.cancelled:
            self._end(r, "cancelled")
            return
        if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
            self._end(r, "stop")
            return
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

    def _piece(self, token: int) -> bytes:
        n = self._llama.llama_token_to_piece(self._model.vocab, token, self._piece_buf, PIECE_MAX, 0, False)
        return self._piece_buf.raw[:n] if n >= 0 else b""

    def _end(self, r: _Request, finish: str) -> None:
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
        r.finish(Generation(
            text="".join(r.pieces), tokens=r.generated, finish_reason=finish, prompt_tokens=len(r.prompt),
            cached_tokens=r.cached, evaluated_tokens=len(r.prompt) - r.cached, ttft=r.ttft,
            latency=time.perf_counter() - r.t0,
        ))

    def _fail_all(self, err: BaseException) -> None:
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
        self._fail_all(BackendError(f"{self.path.name}: the engine was closed"))
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


class BatchedLlamaBackend:
    """One participant's embedded model on a shared engine: its own sequence, decoded along with the others'.

    Without an engine it gets a private one (one sequence, like LlamaCppBackend
    but with the engine's low-level decode loop), closed with the backend.
    """

    def __init__(self, model: str, settings: LlamaSettings | None = None, engine: SharedLlamaEngine | None = None):
        self.model = model
        self.path = resolve_gguf(model)
        self.settings = settings or LlamaSettings()
        self._own_engine = engine is None
        self.engine = engine or SharedLlamaEngine(self.path, self.settings.threads)
        self._seq: _Seq | None = self.engine.lease(self.settings.context_length)
        # The context keeper counts a view's tokens just before the same view is sent: tokenize it once.
        self._last_view: tuple[tuple[ChatMessage, ...], list[int]] | None = None

    @property
    def context_length(self) -> int:
        return self.settings.context_length

    def prompt_tokens(self, messages: list[ChatMessage]) -> list[int]:
        view = tuple(messages)
        if self._last_view is not None and self._last_view[0] == view:
            return self._last_view[1]
        tokens = self.engine.prompt_tokens(messages)
        self._last_view = (view, tokens)
        return tokens

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        return len(self.prompt_tokens(messages))

    async def complete(
        self, messages: list[ChatMessage], sampling: Sampling, on_event: OnEvent | None = None
    ) -> Reply:
        if self._seq is None:
            raise BackendError(f"{self.model}: the backend is closed")
        started_at = utcnow()
        t0 = time.perf_counter()
        try:
            tokens = await asyncio.to_thread(self.prompt_tokens, messages)  # the first call loads the model
        except BackendError as err:
            raise BackendError(f"{self.model}: {err}") from None
        needed = len(tokens) + sampling.max_tokens
        if needed > self.context_length:
            raise ContextFullError(needed, self.context_length)
        on_text = (lambda text: on_event(TextDelta(text))) if on_event is not None else None
        g = await self.engine.generate(self._seq, tokens, sampling, on_text, t0=t0)
        return Reply(
            text=g.text,
            usage=Usage(prompt_tokens=g.prompt_tokens, completion_tokens=len(g.tokens), cached_tokens=g.cached_tokens),
            finish_reason=g.finish_reason,
            started_at=started_at,
            ended_at=utcnow(),
            ttft=g.ttft,
            latency=g.latency,
        )

    async def aclose(self) -> None:
        if self._seq is not None:
            self.engine.release(self._seq)
            self._seq = None
            if self._own_engine:
                await asyncio.to_thread(self.engine.close)


class EmbeddedPool:
    """The shared engines of the embedded participants of conversations running in one process.

    Inside `async with EmbeddedPool():` every embedded backend that
    `make_backend` makes, in that task and the tasks it starts (the
    conversations of a batch, or several `arun_conversation` gathered), comes
    from the pool, which leases it a sequence on one of its engines; the
    engines are closed when the block ends. `streams` says, per model string,
    how many sequences to allocate from the start (a batch knows: its
    concurrency times the participants on that model, plus a spare), so that
    the context is not rebuilt while the first turns run; it grows past that
    when needed.

    `shards`: with one (the default) a model has one engine whose steps use the
    cores other programs leave free. With several, a model's conversations are
    split over that many engines of one thread each, each decoding in its own
    thread, a conversation's participants on the same one. Measured on 2
    cores with bare contexts: two one-thread contexts decoding in parallel gave
    292 tokens/s against 172 for one two-thread context when each had one
    sequence to decode, 319 against 288 with eight each (one-thread steps need
    no OpenMP barriers); a lone conversation is faster on one two-thread engine. Batches use
    `shards_for(concurrency)`. Participants with a fixed thread count share
    one engine per (model, threads).
    """

    def __init__(self, streams: Mapping[str, int] | None = None, shards: int = 1):
        self._streams = dict(streams or {})
        self._shards = max(1, shards)
        self._engines: dict[tuple[Path, int | None], list[SharedLlamaEngine]] = {}
        self._placed: dict[tuple[tuple[Path, int | None], object], SharedLlamaEngine] = {}
        self._lock = threading.Lock()
        self._token = None

    def backend(self, model: str, settings: LlamaSettings | None = None) -> BatchedLlamaBackend:
        settings = settings or LlamaSettings()
        path = resolve_gguf(model)
        key = (path.resolve(), settings.threads)
        with self._lock:
            engines = self._engines.get(key)
            if engines is None:
                n = self._shards if settings.threads is None else 1
                streams = -(-self._streams.get(model, 1) // n)
                if n == 1:
                    engines = [SharedLlamaEngine(path, settings.threads, streams)]
                else:
                    engines = [SharedLlamaEngine(path, 1, streams, runner=_LlamaThread(private=True))
                               for _ in range(n)]
                self._engines[key] = engines
            engine = self._place(key, engines)
        return BatchedLlamaBackend(model, settings, engine)

    def _place(self, key, engines: list[SharedLlamaEngine]) -> SharedLlamaEngine:
        """The engine of this conversation's other participants, else the one with the fewest sequences."""
        if len(engines) == 1:
            return engines[0]
        conversation = _conversation.get()
        engine = self._placed.get((key, conversation)) if conversation is not None else None
        if engine is None:
            engine = min(engines, key=lambda e: e.leased)
            if conversation is not None:
                self._placed[(key, conversation)] = engine
        return engine

    @property
    def engines(self) -> list[SharedLlamaEngine]:
        with self._lock:
            return [e for shards in self._engines.values() for e in shards]

    async def aclose(self) -> None:
        with self._lock:
            engines = [e for shards in self._engines.values() for e in shards]
            self._engines.clear()
            self._placed.clear()
        for engine in engines:
            await asyncio.to_thread(engine.close)

    async def __aenter__(self) -> "EmbeddedPool":
        self._token = _current_pool.set(self)
        return self

    async def __aexit__(self, *exc) -> None:
        _current_pool.reset(self._token)
        await self.aclose()


def shards_for(concurrency: int) -> int:
    """Shards for a pool running `concurrency` conversations at once: one per core, at most one per conversation."""
    return max(1, min(usable_cores(), concurrency))


# Which conversation the caller belongs to (engine.Conversation sets it for the task running it), so
# that a pool puts its participants on one shard.
_conversation: ContextVar[object | None] = ContextVar("duologue_conversation", default=None)


def conversation_scope(key: object):
    """Mark what runs from here on in this task as conversation `key`; returns a token for reset."""
    return _conversation.set(key)


def end_conversation_scope(token) -> None:
    _conversation.reset(token)


# The pool of the `async with EmbeddedPool()` block the caller runs in: a context variable, so each
# task sees its own (asyncio copies it into the tasks a block starts), and none outside a block.
_current_pool: ContextVar[EmbeddedPool | None] = ContextVar("duologue_embedded_pool", default=None)


def current_pool() -> EmbeddedPool | None:
    return _current_pool.get()


def embedded_streams(specs: "list[ConversationSpec]", concurrency: int) -> dict[str, int]:
    """Sequences each embedded model's shared context needs with `concurrency` of these conversations at once.

    A conversation holds a sequence per participant on the model; with more than
    one conversation a spare lets the engine move caches to keep running ones together.
    """
    from .registry import parse_model_string

    per_conversation: dict[str, int] = {}
    for spec in specs:
        for model in {p.model for p in spec.participants}:
            if parse_model_string(model)[0].api == "local":
                n = sum(1 for p in spec.participants if p.model == model)
                per_conversation[model] = max(per_conversation.get(model, 0), n)
    k = min(concurrency, len(specs))
    return {model: k * n + (1 if k > 1 else 0) for model, n in per_conversation.items()}


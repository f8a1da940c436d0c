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
barriers (see EmbeddedPool). BF16 weights batch far better on a CPU with BF16
instructions (8 sequences 2.9x one, against 1.8x for Q8_0: `python
bench/weights.py`), so a pool with more conversations than shards runs them
(weights.py).

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
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import BackendError
from ..base import ChatMessage, Sampling
from .common import STDIO_SWAP_LOCK, template_messages
from .decode import DecodeLoop, Generation, Request, Seq
from .guard import model_params
from .runner import LlamaThread, llama_thread

if TYPE_CHECKING:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter


class SharedLlamaEngine(DecodeLoop):
    """One GGUF model and one llama context, decoding the requests of many sequences together."""

    def __init__(self, path: Path, threads: int | None = None, streams: int = 1, runner: LlamaThread | None = None):
        self.path = Path(path)
        self.threads = threads  # None: as many as the other programs leave free (see LlamaThread)
        self._min_streams = max(1, streams)
        self._runner = runner or llama_thread()
        self._lock = self._runner.lock  # guards _inbox and _seqs
        self._load_lock = threading.Lock()
        self._inbox = deque()
        self._seqs: list[Seq] = []
        self._llama = None  # the llama_cpp module, bound when the model loads
        self._model = None  # llama_cpp._internals.LlamaModel
        self._formatter: Jinja2ChatFormatter | None = None
        self._started = False  # the runner has been told about this engine
        self._closed = False
        self._shut = threading.Event()  # the runner has freed the context
        # Threads inside a call on the model outside the runner (tokenizing a view: count_tokens runs in
        # asyncio.to_thread, and a cancelled run does not wait for it). close() frees the model only once
        # there are none: freeing it under a tokenize is a use-after-free (a segfault at shutdown).
        self._users = 0
        self._idle = threading.Condition()
        self.siblings = []  # set by the pool for one-thread shards (LlamaThread.threads_for)
        super().__init__()

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
            params = model_params(self.path)  # extra buffer types only where the probe found them safe
            try:
                with STDIO_SWAP_LOCK:
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
        with self._using_model() as (model, formatter):
            rendered = formatter(messages=template_messages(messages))
            # The template writes any BOS itself, as llama-cpp-python's chat handler assumes.
            return model.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True)

    @contextlib.contextmanager
    def _using_model(self) -> Iterator[tuple[Any, Jinja2ChatFormatter]]:
        """The model and its chat formatter, not freed before the block ends (close() waits for it)."""
        with self._idle:
            model, formatter = self._model, self._formatter
            if self._closed or model is None or formatter is None:
                raise BackendError(f"{self.path.name}: the engine is closed")
            self._users += 1
        try:
            yield model, formatter
        finally:
            with self._idle:
                self._users -= 1
                self._idle.notify_all()

    @property
    def kv_bytes(self) -> int:
        """The size of the KV cache the context holds now (f16 keys and values, every stream)."""
        if self._model is None:
            return 0
        import llama_cpp

        m = self._model.model
        per_token = (
            2
            * 2
            * llama_cpp.llama_model_n_layer(m)
            * (llama_cpp.llama_model_n_embd(m) // llama_cpp.llama_model_n_head(m) * llama_cpp.llama_model_n_head_kv(m))
        )
        return self._n_streams * self._stream_len * per_token

    @property
    def leased(self) -> int:
        """Sequences leased now (the participants using this engine)."""
        return len(self._seqs)

    def lease(self, context_length: int) -> Seq:
        seq = Seq(context_length)
        with self._lock:
            self._seqs.append(seq)
        return seq

    def release(self, seq: Seq) -> None:
        with self._lock:
            if not self._started or self._closed:  # nothing of it is in a context: just forget it
                if seq in self._seqs:
                    self._seqs.remove(seq)
                return
        self._send("release", seq)

    async def generate(
        self,
        seq: Seq,
        prompt: list[int],
        sampling: Sampling,
        on_text: Callable[[str], None] | None = None,
        t0: float | None = None,
        lookup: bool = False,
    ) -> Generation:
        """Run one request on `seq`; cancelling the caller stops it before the next step. `lookup`:
        draft tokens from the sequence's history and verify them (lookup.py; the output is the same)."""
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
        request = Request(
            seq,
            list(prompt),
            sampling,
            lambda text: call(on_text, text),
            lambda result: call(settle, result),
            t0 if t0 is not None else time.perf_counter(),
            lookup=lookup,
        )
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
            with self._idle, self._lock:
                if self._closed:
                    return
                self._closed = True  # no new user of the model from here on (_using_model)
                started = self._started
            if started:
                self._send("close", None, force=True)
                self._shut.wait()  # the runner has stopped decoding and freed the context
            with self._idle:  # a tokenize in another thread ends first
                self._idle.wait_for(lambda: self._users == 0)
            if self._model is not None:
                with STDIO_SWAP_LOCK:
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

"""The first embedded engine: a llama-cpp-python `Llama` per participant, kept for comparison.

Selected with DUOLOGUE_EMBEDDED_ENGINE=llama (the default is the shared engine,
engine.py); the benchmarks and tests/test_run_local.py measure against it.
Each participant gets its own `Llama` (its own context and KV cache). A turn
renders that participant's view with the chat template stored in the GGUF,
tokenizes it, and lets llama.cpp keep the longest prefix already in the
context, so only the tokens added since the participant's last turn are
evaluated: a conversation costs O(n) in its length, not O(n^2).
"""

from __future__ import annotations

import asyncio
import codecs
import os
import threading
import time
from typing import TYPE_CHECKING

from ...errors import BackendError
from ...records import utcnow
from ..base import ChatMessage, ContextFullError, OnEvent, Reply, Sampling, TextDelta, Usage
from .catalogue import resolve_gguf
from .common import STDIO_SWAP_LOCK, LlamaSettings, common_prefix, template_messages
from .guard import llama_params

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter


class LlamaCppBackend:
    """One participant's embedded model: its own llama context, used one turn at a time."""

    def __init__(self, model: str, settings: LlamaSettings | None = None):
        self.model = model
        self.path = resolve_gguf(model)
        self.settings = settings or LlamaSettings()
        self._llm: Llama | None = None
        self._formatter: Jinja2ChatFormatter | None = None
        self._lock = threading.Lock()  # a llama context is not safe to share between threads

    # Loading takes a moment and touches the disk: do it off the event loop, once.
    def _load(self) -> tuple[Llama, Jinja2ChatFormatter]:
        if self._llm is None or self._formatter is None:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            try:
                # Extra buffer types only where the probe found them safe (guard.py).
                with llama_params(self.path), STDIO_SWAP_LOCK:
                    llm = Llama(
                        model_path=str(self.path),
                        n_ctx=self.settings.context_length,
                        n_threads=self.settings.threads or os.cpu_count(),
                        n_threads_batch=self.settings.threads or os.cpu_count(),
                        seed=self.settings.seed if self.settings.seed is not None else 0,
                        verbose=False,
                    )
            except (ValueError, RuntimeError) as err:
                raise BackendError(f"{self.model}: cannot load {self.path.name}: {err}") from None
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise BackendError(f"{self.model}: {self.path.name} has no chat template")
            eos = llm._model.token_get_text(llm.token_eos()) if llm.token_eos() != -1 else ""
            bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() != -1 else ""
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
            self._llm = llm
        return self._llm, self._formatter

    def prompt_tokens(self, messages: list[ChatMessage]) -> list[int]:
        """The participant's view rendered with the GGUF's chat template, as tokens."""
        llm, formatter = self._load()
        rendered = formatter(messages=template_messages(messages))
        # The template writes any BOS itself (added_special), as llama-cpp-python's chat handler assumes.
        return llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, messages: list[ChatMessage]) -> int:
        with self._lock:
            return len(self.prompt_tokens(messages))

    @property
    def context_length(self) -> int:
        return self.settings.context_length

    async def complete(self, messages: list[ChatMessage], sampling: Sampling, on_event: OnEvent | None = None) -> Reply:
        loop = asyncio.get_running_loop()
        cancel = threading.Event()

        def emit(text: str) -> None:
            if on_event is not None:
                loop.call_soon_threadsafe(on_event, TextDelta(text))

        try:
            return await asyncio.to_thread(self._complete_sync, messages, sampling, emit, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the worker thread stops at its next token
            raise

    def _complete_sync(self, messages, sampling: Sampling, emit, cancel: threading.Event) -> Reply:
        import llama_cpp

        with self._lock:
            llm, _ = self._load()
            started_at = utcnow()
            t0 = time.perf_counter()
            tokens = self.prompt_tokens(messages)
            n_ctx = llm.n_ctx()
            if len(tokens) + sampling.max_tokens > n_ctx:
                raise ContextFullError(len(tokens) + sampling.max_tokens, n_ctx)
            cached = common_prefix(llm.input_ids[: llm.n_tokens], tokens)
            # llama.cpp must re-evaluate at least the last prompt token to get fresh logits.
            cached = min(cached, len(tokens) - 1)
            # The engine passes a seed derived from the participant's seed and the message index.
            llm.set_seed(sampling.seed if sampling.seed is not None else 0)
            extra = sampling.extra
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            vocab = llm._model.vocab
            pieces: list[str] = []
            ttft = None
            finish = "length"
            n_out = 0
            for token in llm.generate(
                tokens,
                temp=sampling.temperature,
                top_p=sampling.top_p,
                top_k=int(extra.get("top_k", 40)),
                min_p=float(extra.get("min_p", 0.05)),
                repeat_penalty=float(extra.get("repeat_penalty", 1.0)),
            ):
                if cancel.is_set():
                    finish = "cancelled"
                    break
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                n_out += 1
                text = decoder.decode(llm.detokenize([token]))
                if text:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    pieces.append(text)
                    emit(text)
                if n_out >= sampling.max_tokens:
                    break
            tail = decoder.decode(b"", final=True)
            if tail:
                pieces.append(tail)
                emit(tail)
            latency = time.perf_counter() - t0
            return Reply(
                text="".join(pieces),
                usage=Usage(prompt_tokens=len(tokens), completion_tokens=n_out, cached_tokens=cached),
                finish_reason=finish,
                started_at=started_at,
                ended_at=utcnow(),
                ttft=ttft,
                latency=latency,
            )

    async def aclose(self) -> None:
        with self._lock:
            if self._llm is not None:
                with STDIO_SWAP_LOCK:
                    self._llm.close()
                self._llm = None

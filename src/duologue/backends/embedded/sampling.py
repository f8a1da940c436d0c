"""The sampler chain of one request: the one llama-cpp-python's `Llama.generate` builds."""

from __future__ import annotations

from ..base import Sampling

PENALTY_LAST_N = 64  # the window of repeat_penalty, as llama-cpp-python's default


def sampler_chain(llama_cpp, n_vocab: int, s: Sampling):
    """The chain llama-cpp-python's Llama.generate builds, so equal logits give equal tokens.

    `llama_cpp` is the bound module (the engine binds it when its model loads); the caller frees
    the chain with `llama_sampler_free`.
    """
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = lambda smpl: llama_cpp.llama_sampler_chain_add(chain, smpl)  # noqa: E731
    extra = s.extra
    repeat = float(extra.get("repeat_penalty", 1.0))
    if repeat != 1.0:
        add(llama_cpp.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, repeat, 0.0, 0.0))
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

"""The embedded engine: GGUF models run in-process by llama.cpp (the `local/...` provider).

One module per concern:
  catalogue.py  which models are embedded and where their GGUF files are (`resolve_gguf`)
  common.py     what both engines share: participant settings, loading a model, its chat template
  cpu.py        the cores this process may use and how busy other programs keep them
  runner.py     the one thread that runs llama.cpp's decode steps for its engines
  decode.py     the decode loop on that thread: batching, streams, sampling
  lookup.py     lookup decoding: drafts from a sequence's own history, verified in the decode step
  sampling.py   the sampler chain of a request, as llama-cpp-python builds it
  weights.py    which weights an engine loads: the shipped file or its Q8_0 or BF16 copy in the cache folder
  guard.py      whether a file is loaded with llama.cpp's extra buffer types, decided once by a probe
  probe.py      the probe's child process: loads a file with or without them, decodes, times
  engine.py     `SharedLlamaEngine`: one model and one context shared by many sequences
  backend.py    `BatchedLlamaBackend`: a participant's sequence on a shared engine
  pool.py       `EmbeddedPool`: the engines of the conversations running in one process
  provider.py   the `local` provider's factory and checks
  simple.py     `LlamaCppBackend`: a llama-cpp-python `Llama` per participant, the first engine,
                kept for comparison (DUOLOGUE_EMBEDDED_ENGINE=llama)
"""

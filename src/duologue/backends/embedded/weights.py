"""Which weights the embedded engine runs: the shipped GGUF, or a Q8_0 copy requantized from it once.

SmolLM2's GGUF ships as Q4_1. llama.cpp has no fast batched kernel for Q4_1
on a CPU: on 2 cores one sequence decodes fastest with it, but 8 decoded
together gain only about 1.6x. Requantized to Q8_0 (llama.cpp's own quantizer,
`llama_model_quantize` with `allow_requantize`, under a second) the model loses
no quality (NLL 2.220 against 2.228 on the same text) and a batch of 8 gains
about 2.4x, while one sequence alone decodes slower (`python bench/weights.py`
prints both side by side on this machine).

So `weights = "auto"` (the default) runs the shipped model as Q8_0, for a lone
conversation as for a batch: measured side by side on 2 cores (2026-11-27,
`python bench/lone_breakdown.py --engines
"shared+DUOLOGUE_WEIGHTS=q4_1+DUOLOGUE_LOOKUP=0,shared+DUOLOGUE_WEIGHTS=q8_0+DUOLOGUE_LOOKUP=0"`),
a lone 20-message conversation took 17.8 s on Q8_0 against 19.0 s on Q4_1:
its prompts evaluate 1.6x faster (3.4 s against 5.4 s), which more than pays
for decoding 4% slower; `make bench` row 3 measured 123 against 106 tokens/s
one conversation after another. A `local/<path>.gguf` of the user's own is
run as it is under `auto` (never copied). `"q4_1"` (the shipped file, or the
user's file as it is) and `"q8_0"` force one. The Q8_0
file is written once into the user's cache folder (`DUOLOGUE_CACHE_DIR`, else
the platform's cache folder), atomically (a temporary file, then a rename), with
a sidecar JSON holding the SHA-256 of the source and of the output; it is
rebuilt when missing, when its hash does not match, or when the source changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Literal

from ...errors import BackendError

Weights = Literal["auto", "q4_1", "q8_0"]
WEIGHTS: tuple[str, ...] = ("auto", "q4_1", "q8_0")
CACHE_DIR_ENV = "DUOLOGUE_CACHE_DIR"
WEIGHTS_ENV = "DUOLOGUE_WEIGHTS"  # overrides every participant's `weights` (auto, q4_1, q8_0)

_lock = threading.Lock()  # one requantization at a time in this process
_verified: dict[Path, str] = {}  # output file -> its hash, checked in this process already


def cache_dir() -> Path:
    """Where derived weights are kept: $DUOLOGUE_CACHE_DIR, else the platform's user cache folder."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("duologue"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_type(path: Path) -> str:
    """The weight type a GGUF's name says (`...Q4_1.gguf` -> q4_1), lower case; '' when it says none."""
    stem = path.stem.lower()
    for kind in ("q8_0", "q4_1", "q4_0", "q5_0", "q5_1", "f16", "f32", "bf16"):
        if stem.endswith(kind):
            return kind
    return ""


def resolve(weights: str, shipped: bool = True) -> str:
    """The weights `auto` means: q8_0 for the shipped model (lone or batched: measured faster both ways),
    a user's own GGUF as it is ("q4_1", which means the file unchanged)."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        if env not in WEIGHTS:
            raise BackendError(f"{WEIGHTS_ENV}={env}: use one of {', '.join(WEIGHTS)}")
        weights = env
    if weights == "auto":
        return "q8_0" if shipped else "q4_1"
    return weights


def shipped(model: str) -> bool:
    """A model duologue ships by name (`local/smollm2`), not a `local/<path>.gguf` of the user's."""
    from .catalogue import EMBEDDED_MODELS

    return model.partition("/")[2] in EMBEDDED_MODELS


def weights_path(source: Path, weights: str) -> Path:
    """The GGUF to load for these (resolved) weights: the shipped file, or its Q8_0 copy (made if needed).
    For a `local/<path>.gguf` of another type, `q4_1` means the file as it is."""
    if weights not in ("q8_0",) or file_type(source) == weights:
        return source
    return q8_0(source)


def _sidecar(out: Path) -> Path:
    return out.with_suffix(".json")


def q8_0(source: Path) -> Path:
    """The Q8_0 copy of `source` in the cache folder, requantized now if missing, corrupted or stale."""
    source = Path(source).resolve()
    folder = cache_dir() / "weights"
    st = source.stat()
    out = folder / f"{source.stem}.{st.st_size}.q8_0.gguf"
    with _lock:
        if out in _verified and out.exists():
            return out
        side = _sidecar(out)
        meta: dict = {}
        if out.exists() and side.exists():
            try:
                meta = json.loads(side.read_text())
            except (OSError, ValueError):
                meta = {}
            # Both files as they were when hashed (size and modification time): trusted without reading
            # 230 MB again in every process; anything else is hashed anew.
            if meta.get("source_stat") == _stat(source) and meta.get("stat") == _stat(out):
                _verified[out] = meta["sha256"]
                return out
        src_hash = sha256(source)
        if meta.get("source_sha256") == src_hash and meta.get("sha256") == sha256(out):
            _write_sidecar(side, source, out, src_hash, meta["sha256"])
            _verified[out] = meta["sha256"]
            return out
        folder.mkdir(parents=True, exist_ok=True)
        out_hash = _quantize(source, out)
        _write_sidecar(side, source, out, src_hash, out_hash)
        _verified[out] = out_hash
        return out


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _write_sidecar(side: Path, source: Path, out: Path, src_hash: str, out_hash: str) -> None:
    tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    tmp_side.write_text(
        json.dumps(
            {
                "source": str(source),
                "source_sha256": src_hash,
                "source_stat": _stat(source),
                "ftype": "q8_0",
                "sha256": out_hash,
                "stat": _stat(out),
            }
        )
    )
    os.replace(tmp_side, side)


def _quantize(source: Path, out: Path) -> str:
    """llama.cpp's quantizer, into a temporary file beside `out`, renamed over it; the output's hash."""
    import llama_cpp
    from llama_cpp._logger import set_verbose

    from .common import STDIO_SWAP_LOCK

    set_verbose(False)  # llama.cpp's quantizer logs every tensor otherwise
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    params.nthread = 0  # every core
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with STDIO_SWAP_LOCK:
            status = llama_cpp.llama_model_quantize(str(source).encode(), tmp.encode(), params)
        if status != 0:
            raise BackendError(f"cannot requantize {source.name} to Q8_0 (llama.cpp returned {status})")
        digest = sha256(Path(tmp))
        os.replace(tmp, out)
        return digest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def complete_embedded(spec):
    """The spec with each embedded participant's weights and lookup decoding as they will be used, so the
    stored spec says. A ConversationSpec in, a copy out; other participants unchanged."""
    from .lookup import lookup_default
    from .pool import is_embedded

    spec = spec.model_copy(deep=True)
    for p in spec.participants:
        if is_embedded(p.model):
            p.weights = resolve(p.weights, shipped(p.model))
            p.lookup = lookup_default(p.lookup, p.weights)
    return spec

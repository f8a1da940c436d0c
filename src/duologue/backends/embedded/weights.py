"""Which weights the embedded engine runs: the shipped GGUF, or a Q8_0 or BF16 copy made from it once.

SmolLM2's GGUF ships as Q4_1. llama.cpp has no fast batched kernel for Q4_1
on a CPU: on 2 cores one sequence decodes fastest with it, but 8 decoded
together gain only about 1.6x. Converted with llama.cpp's own quantizer
(`llama_model_quantize` with `allow_requantize`, under a second) to Q8_0 or
BF16 the model loses no quality (NLL per token of a fixed text: Q4_1 1.831,
Q8_0 1.835, BF16 1.825), and Q8_0 and BF16 serve different work (`python bench/weights.py`
prints all three side by side on this machine). Measured on 2 cores
(AVX512_BF16), 2026-11-27: one sequence decodes 137 tokens/s on Q8_0 and
105 on BF16, 8 sequences decoded together 239 against 307, 64-token prompt
chunks 596 against 821.

So which of the three serves a machine best is not one rule: on the AMD EPYC
where these were measured a lone conversation was fastest on Q8_0 and a batch
on BF16, while on an Intel Xeon with AMX (llama.cpp's extra buffer types off,
guard.py) Q4_1 decoded single tokens fastest. `weights = "auto"` (the default)
therefore asks the probe's timings of each (guard.py: a lone turn on every
core, a batched shard's steps on one thread, measured once per machine
while the probe checks each file) and runs the shipped model on the one that
makes a turn cheapest (`fastest`): for a lone engine, or for a pool that runs
more conversations than it has shards, so that its steps are batches
(`EmbeddedPool.batched`). A `local/<path>.gguf` of the user's own is run as it is under
`auto` (never copied). `"q4_1"` (the shipped file, or the user's file as it
is), `"q8_0"` and `"bf16"` force one. A derived file is written once into the
user's cache folder (`DUOLOGUE_CACHE_DIR`, else the platform's cache folder),
atomically (a temporary file, then a rename), with a sidecar JSON holding the
SHA-256 of the source and of the output; it is rebuilt when missing, when its
hash does not match, or when the source changed. Deriving needs no crash
guard (llama.cpp's quantizer computes on no buffer type); what it makes is
probed (guard.py) before it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from ...errors import BackendError
from ...folders import cache_dir
from ...spec import Weights
from .catalogue import resolve_gguf
from .common import file_type
from .guard import Verdict, turn_seconds, verdict
from .lookup import lookup_default

WEIGHTS: tuple[str, ...] = get_args(Weights)  # the spec's choices
DERIVED: dict[str, str] = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "bf16": "LLAMA_FTYPE_MOSTLY_BF16"}  # made from the source
WEIGHTS_ENV = "DUOLOGUE_WEIGHTS"  # overrides every participant's `weights` (one of WEIGHTS)

_lock = threading.Lock()  # one requantization at a time in this process
_verified: set[Path] = set()  # derived files checked in this process already


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


AUTO_CHOICES = ("q4_1", "q8_0", "bf16")  # what `auto` picks among for the shipped model


def resolve(weights: str, model: str = "local/smollm2", batched: bool = False) -> str:
    """The weights a participant on `model` runs: DUOLOGUE_WEIGHTS first, then the spec's; `auto` for the
    shipped model is the fastest here for the workload (`fastest`), for a user's own GGUF the file as it is
    ("q4_1", which means the file unchanged)."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        if env not in WEIGHTS:
            raise BackendError(f"{WEIGHTS_ENV}={env}: use one of {', '.join(WEIGHTS)}")
        weights = env
    if weights == "auto":
        if not shipped(model):
            return "q4_1"
        return fastest(resolve_gguf(model), batched)
    return weights


def fastest(source: Path, batched: bool) -> str:
    """The weights of AUTO_CHOICES whose turn costs least on this machine by the probe's timings of each file
    (guard.verdict: measured once per machine with the extra buffer types the verdict allows, then cached),
    each with its own lookup default (lookup decoding pays on weights whose several-token steps are cheap):
    for an engine of its own (`batched` False) or a shard whose steps are batches."""
    cost = {kind: turn_cost(kind, t, batched) for kind, t in _timings(source).items()}
    return min(cost, key=cost.__getitem__)


def turn_cost(kind: str, timing: dict[str, float], batched: bool) -> float:
    """A turn's seconds on `kind` weights by the probe's `timing` of them (guard.turn_seconds), decoded with
    lookup or without as those weights are by default (what `auto` weighs, and `duologue doctor` shows)."""
    return turn_seconds(timing, batched, lookup_default(None, kind))


def _timings(source: Path) -> dict[str, dict[str, float]]:
    out = {}
    for kind in AUTO_CHOICES:
        timing = verdict(weights_path(source, kind), timing=True).timing
        assert timing is not None  # verdict(timing=True) measures them or raises
        out[kind] = timing
    return out


@dataclass(frozen=True)
class MachineChoice:
    """How the shipped model runs on this machine: each weight file's verdict, and what `auto` picks."""

    verdicts: dict[str, Verdict]  # by weight type (AUTO_CHOICES)
    lone: str  # the weights `auto` runs a lone conversation on
    batched: str  # and a batch whose steps are batches


def machine_choice(model: str = "local/smollm2") -> MachineChoice:
    """Probes what is not cached yet (each weight file, with timings), then says what `auto` picks."""
    source = resolve_gguf(model)
    verdicts = {kind: verdict(weights_path(source, kind), timing=True) for kind in AUTO_CHOICES}
    return MachineChoice(verdicts, fastest(source, False), fastest(source, True))


def shipped(model: str) -> bool:
    """A model duologue ships by name (`local/smollm2`), not a `local/<path>.gguf` of the user's."""
    from .catalogue import EMBEDDED_MODELS

    return model.partition("/")[2] in EMBEDDED_MODELS


def weights_path(source: Path, weights: str) -> Path:
    """The GGUF to load for these (resolved) weights: the shipped file, or its Q8_0 copy (made if needed).
    For a `local/<path>.gguf` of another type, `q4_1` means the file as it is."""
    if weights not in DERIVED or file_type(source) == weights:
        return source
    return derived(source, weights)


def _sidecar(out: Path) -> Path:
    return out.with_suffix(".json")


def derived(source: Path, kind: str) -> Path:
    """The `kind` copy of `source` (a key of DERIVED) in the cache folder, made now if missing, corrupted
    or stale."""
    source = Path(source).resolve()
    folder = cache_dir() / "weights"
    st = source.stat()
    out = folder / f"{source.stem}.{st.st_size}.{kind}.gguf"
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
                _verified.add(out)
                return out
        src_hash = sha256(source)
        if meta.get("source_sha256") == src_hash and meta.get("sha256") == sha256(out):
            _write_sidecar(side, source, out, src_hash, meta["sha256"], kind)
            _verified.add(out)
            return out
        folder.mkdir(parents=True, exist_ok=True)
        out_hash = _quantize(source, out, kind)
        _write_sidecar(side, source, out, src_hash, out_hash, kind)
        _verified.add(out)
        return out


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _write_sidecar(side: Path, source: Path, out: Path, src_hash: str, out_hash: str, kind: str) -> None:
    tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    tmp_side.write_text(
        json.dumps(
            {
                "source": str(source),
                "source_sha256": src_hash,
                "source_stat": _stat(source),
                "ftype": kind,
                "sha256": out_hash,
                "stat": _stat(out),
            }
        )
    )
    os.replace(tmp_side, side)


def _quantize(source: Path, out: Path, kind: str) -> str:
    """llama.cpp's quantizer, into a temporary file beside `out`, renamed over it; the output's hash."""
    import llama_cpp
    from llama_cpp._logger import set_verbose

    from .common import STDIO_SWAP_LOCK

    set_verbose(False)  # llama.cpp's quantizer logs every tensor otherwise
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, DERIVED[kind])
    params.allow_requantize = True
    params.nthread = 0  # every core
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with STDIO_SWAP_LOCK:
            status = llama_cpp.llama_model_quantize(str(source).encode(), tmp.encode(), params)
        if status != 0:
            raise BackendError(f"cannot convert {source.name} to {kind.upper()} (llama.cpp returned {status})")
        digest = sha256(Path(tmp))
        os.replace(tmp, out)
        return digest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def loaded_type(model: str, weights: str) -> str:
    """The weight type of the file an engine loads for `model` with these (resolved) weights: the derived
    copy's, or the file's own as its name says (a user's file run as it is); what lookup's default rests on."""
    if weights in DERIVED:
        return weights
    own = "" if shipped(model) else file_type(Path(model.partition("/")[2]))
    return own or weights

"""Whether llama.cpp may load a GGUF with its extra buffer types on this machine, decided once by a probe.

llama.cpp's CPU backend can place weights in "extra" buffer types: the AMX
kernels of Intel Xeons of the Sapphire Rapids generation and later (AWS
m7i/c7i/r7i, GCP C3, Azure Dv6), and the "repack" of weights into
interleaved layouts that other CPUs use. On some of those machines the AMX
path segfaults inside `ggml_backend_amx_mul_mat` (llama.cpp issue 20824:
SmolLM2's Q4_1 and Q8_0 crash at their first prompt), and it gives wrong
results with Q4_0/Q4_1 where it does not crash (llama.cpp PR 16315). Loading
with `use_extra_bufts = False` keeps the weights in the plain CPU buffer: no
AMX, no repack.

Nothing about a CPU's name says which machines crash, so a probe decides.
Before the first load of a file with extra buffer types, a child process
(`probe.py`) loads it without them and decodes a few greedy tokens, then
another child does the same with them. If the second dies (by a signal, an
error, or time), or its greedy tokens differ from the first's (the
wrong-results case), this file is loaded without extra buffer types from
then on. The verdict is kept in the cache folder (`probe/` beside the
derived weights), keyed by the llama.cpp build (llama-cpp-python's version
and the hash of its libraries), the CPU (its flags, and what llama.cpp
reports it uses) and the file (its name, size and weight type), so the probe
runs once per machine; a cache file that cannot be read, or was written for
another build, CPU or file, is probed again. Every load path takes its
parameters from here: the shared engine (`engine.py`), the one-`Llama`-per-
participant engine (`simple.py`) and the bench scripts; the catalogue's
metadata load reads the vocabulary only (no weights: never extra buffers). Weight
derivation (`weights.py`, llama.cpp's quantizer) computes on no buffer type
and needs no guard; what it makes is probed before it is loaded.

`DUOLOGUE_EXTRA_BUFTS=off` loads every file without extra buffer types and
`=on` with them, without a probe; unset (or `auto`), the probe decides.

While a child runs with the configuration that will be used, it can also time
the work the engine does (`--time`: a lone turn on every core, a shard's
batched steps on one thread). `weights.resolve` picks the weights `auto` means
from those timings (`turn_seconds`), so the choice is measured on the machine
that runs it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import BackendError
from ...folders import cache_dir
from .common import file_type

EXTRA_BUFTS_ENV = "DUOLOGUE_EXTRA_BUFTS"  # on | off | auto (the default: the probe decides)
SCHEMA = 2  # of the cache files; another value is probed again (2: timings of lookup's draft steps)
PROBE_TIMEOUT = 300.0  # seconds a child may take (a large GGUF of the user's loads for a while)

# A turn, as `auto`'s choice weighs it: the tokens it reads (the other's message and the template) and writes.
TURN_IN, TURN_OUT = 100, 80
# Of the tokens written with lookup decoding, the share that come as accepted drafts: a quarter (measured on
# bench/lone_breakdown.py's conversation at temperature 0.9, 2026-12-04: 37% on Q8_0, 24% on BF16; at 1.2,
# bench/lookup.py, 4%; where conversations loop, 67-76%). Each costs its place in a 16-position step of
# which about 12 are kept (73% of drafts accepted, lookup.py).
LOOKUP_SHARE = 0.25
DRAFT_COST = 16 / 12

_lock = threading.Lock()  # one probe at a time in this process (a file lock keeps processes apart)


@dataclass(frozen=True)
class Verdict:
    """How a GGUF is loaded on this machine: with llama.cpp's extra buffer types or without, and why."""

    file: str  # the GGUF's name
    weights: str  # its weight type (q4_1, q8_0, bf16, …)
    extra_bufts: bool
    reason: str
    timing: dict[str, float] | None = None  # the probe's timings of the configuration used (see probe.py)
    probed: bool = True  # False: decided without a probe (DUOLOGUE_EXTRA_BUFTS)


@dataclass
class ChildResult:
    """What a probe child left: its exit status (negative: the signal that killed it), output, error text."""

    returncode: int | None  # None: it did not end in time
    stdout: str = ""
    stderr: str = ""
    result: dict[str, Any] | None = field(default=None)

    @property
    def failure(self) -> str | None:
        """None when the child printed its result; else why not, in a few words."""
        if self.returncode is None:
            return f"did not finish within {PROBE_TIMEOUT:.0f} s"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"was killed by {name}"
        if self.returncode != 0 or self.result is None:
            last = self.stderr.strip().splitlines()[-1:] or [f"exit status {self.returncode}"]
            return f"failed ({last[0][:200]})"
        return None


def probe_command(path: Path, extra_bufts: bool, timing: bool) -> list[str]:
    """The child's command line (tests put a stand-in here)."""
    cmd = [sys.executable, "-m", "duologue.backends.embedded.probe", str(path)]
    cmd += ["--extra-bufts", "on" if extra_bufts else "off"]
    return cmd + (["--time"] if timing else [])


def run_child(path: Path, extra_bufts: bool, timing: bool) -> ChildResult:
    """Run one probe child and read what it printed (its last line, JSON)."""
    try:
        proc = subprocess.run(
            probe_command(path, extra_bufts, timing),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        return ChildResult(None, str(err.stdout or ""), str(err.stderr or ""))
    result = None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = None
    return ChildResult(proc.returncode, proc.stdout, proc.stderr, result if isinstance(result, dict) else None)


# -- what the verdict is keyed by ----------------------------------------------------------------------


@functools.cache
def build_id() -> str:
    """llama-cpp-python's version and a hash of the libraries it loads (another build: probed again)."""
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    h = hashlib.sha256(llama_cpp.__version__.encode())
    folder = Path(bindings._base_path)
    for lib in sorted(folder.glob("*")):
        if lib.is_file() and not lib.is_symlink() and any(s in lib.name for s in (".so", ".dylib", ".dll")):
            h.update(lib.name.encode())
            h.update(lib.read_bytes())
    return f"{llama_cpp.__version__}:{h.hexdigest()[:16]}"


@functools.cache
def cpu_id() -> str:
    """The CPU as far as the kernels care: its model and flags, and what llama.cpp says it uses of them."""
    import llama_cpp

    facts = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo") as f:
            seen: set[str] = set()
            for line in f:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("model name", "flags", "Features", "CPU implementer", "CPU part") and name not in seen:
                    seen.add(name)
                    facts.append(
                        f"{name}={' '.join(sorted(value.split())) if name in ('flags', 'Features') else value.strip()}"
                    )
    except OSError:
        pass
    facts.append(llama_cpp.llama_print_system_info().decode(errors="replace"))
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


def system_info() -> str:
    """What llama.cpp reports of this CPU (`AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 | …`), the ones only."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    parts = (part.split(":")[-1].split("=")[0].strip() for part in info.split("|") if part.strip().endswith("= 1"))
    return " ".join(parts)


def weight_type(path: Path) -> str:
    """The file's weight type: what its name says (weights.py's names), else what its metadata says."""
    kind = file_type(path)
    if kind:
        return kind
    from .catalogue import gguf_facts

    return gguf_facts(path).file_type or "unknown"


def cache_key(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {
        "schema": SCHEMA,
        "llama_cpp": build_id(),
        "cpu": cpu_id(),
        "file": path.name,
        "size": st.st_size,
        "weights": weight_type(path),
    }


def cache_file(path: Path) -> Path:
    return cache_dir() / "probe" / f"{path.name}.json"


def _read(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached entry for this file, when it is readable and was written for this build, CPU and file."""
    try:
        entry = json.loads(cache_file(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("extra_bufts"), bool):
        return None
    return entry


def _write(path: Path, entry: dict[str, Any]) -> None:
    out = cache_file(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(entry, f, indent=1)
    os.replace(tmp, out)


@contextlib.contextmanager
def _probe_lock() -> Iterator[None]:
    """This process's lock, and a lock file that keeps two processes from probing the same machine at once."""
    with _lock:
        folder = cache_dir() / "probe"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not on Windows: processes may then probe twice, harmlessly
            yield
            return
        with open(folder / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


# -- the verdict ---------------------------------------------------------------------------------------


def _say(line: str) -> None:
    print(f"duologue: {line}", file=sys.stderr, flush=True)


def forced() -> bool | None:
    """DUOLOGUE_EXTRA_BUFTS: True (on), False (off), None (unset or auto: the probe decides)."""
    value = os.environ.get(EXTRA_BUFTS_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise BackendError(f"{EXTRA_BUFTS_ENV}={value}: use on, off or auto")


def verdict(path: Path, timing: bool = False, say: Callable[[str], None] = _say) -> Verdict:
    """How this GGUF is loaded here: from the cache, else from a probe (which `say`s what it does).
    `timing`: also the timings of the configuration used, measured by a child if not cached."""
    path = Path(path).resolve()
    choice = forced()
    key = cache_key(path)
    entry = _read(path, key)
    if entry is None or (timing and _timing(entry, choice) is None):
        with _probe_lock():
            entry = _read(path, key)  # another process may have probed meanwhile
            if entry is None:
                entry = _probe(path, key, timing and choice is None, say)
                _write(path, entry)
            config = _config(entry, choice)
            if timing and _timing(entry, choice) is None:
                child = run_child(path, config, timing=True)
                if child.failure is not None or child.result is None or "timing" not in child.result:
                    raise BackendError(f"{path.name}: timing it here {child.failure or 'printed no timings'}")
                entry.setdefault("timing", {})["on" if config else "off"] = child.result["timing"]
                _write(path, entry)
    if choice is not None:
        state = "on" if choice else "off"
        reason = f"forced {state} by {EXTRA_BUFTS_ENV}={os.environ.get(EXTRA_BUFTS_ENV, '').strip()}"
        return Verdict(path.name, key["weights"], choice, reason, _timing(entry, choice), probed=False)
    return Verdict(path.name, key["weights"], entry["extra_bufts"], entry["reason"], _timing(entry, None))


def _config(entry: dict[str, Any], choice: bool | None) -> bool:
    return entry["extra_bufts"] if choice is None else choice


def _timing(entry: dict[str, Any], choice: bool | None) -> dict[str, float] | None:
    timings = entry.get("timing") or {}
    return timings.get("on" if _config(entry, choice) else "off")


def _probe(path: Path, key: dict[str, Any], timing: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the children and decide: without extra buffer types first (the reference), then with them."""
    say(f"checking how llama.cpp runs {path.name} on this CPU (once per machine) …")
    entry: dict[str, Any] = {"key": key, "probed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    entry["system_info"] = system_info()
    plain = run_child(path, False, timing=False)
    extra = run_child(path, True, timing=timing)
    timings: dict[str, Any] = {}
    if plain.failure is not None:
        # The file does not run here even without them: keep them off; loading it will say what is wrong.
        entry["extra_bufts"], entry["reason"] = False, f"the probe {plain.failure} even without extra buffer types"
    elif extra.failure is not None:
        entry["extra_bufts"], entry["reason"] = False, f"with extra buffer types the probe {extra.failure}"
    elif plain.result is not None and extra.result is not None and plain.result["tokens"] != extra.result["tokens"]:
        entry["extra_bufts"] = False
        entry["reason"] = "with extra buffer types the greedy tokens differ from those without (wrong results)"
    else:
        entry["extra_bufts"], entry["reason"] = True, "the same greedy tokens with extra buffer types as without"
        if extra.result is not None and "timing" in extra.result:
            timings["on"] = extra.result["timing"]
    if timings:
        entry["timing"] = timings
    if not entry["extra_bufts"]:
        say(
            f"{path.name}: loading without llama.cpp's extra buffer types: {entry['reason']} "
            f"({EXTRA_BUFTS_ENV}=on|off overrides)"
        )
    return entry


def turn_seconds(timing: dict[str, float], batched: bool, lookup: bool = False) -> float:
    """What a turn costs by the probe's timings: reading TURN_IN tokens as a prompt chunk and writing TURN_OUT,
    on every core (a lone engine), or on one thread in steps shared with other sequences (a shard of a batch:
    its decode rate is the steps' total). With lookup decoding (the weights' default, lookup.py) a share
    LOOKUP_SHARE of the tokens written come as accepted drafts, in steps of 16 positions of which about 12
    are kept; the rest one at a time."""
    side = "shard" if batched else "lone"
    share = LOOKUP_SHARE if lookup else 0.0
    per_token = (1 - share) / timing[f"{side}_decode_tps"] + share * DRAFT_COST / timing[f"{side}_draft_tps"]
    return TURN_IN / timing[f"{side}_prompt_tps"] + TURN_OUT * per_token


# -- the parameters every load path uses ---------------------------------------------------------------


def model_params(path: Path):
    """llama.cpp's model parameters for loading this GGUF here, extra buffer types as the verdict says."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = verdict(path).extra_bufts
    return params


_params_lock = threading.Lock()


@contextlib.contextmanager
def llama_params(path: Path) -> Iterator[None]:
    """For llama-cpp-python's `Llama(...)`, which builds its model parameters itself from
    `llama_model_default_params()` and has no argument for extra buffer types: inside this block (one at
    a time) that function gives this file's parameters. `Llama.model_params` keeps what was used."""
    import llama_cpp.llama_cpp as bindings

    extra = verdict(path).extra_bufts
    with _params_lock:
        default = bindings.llama_model_default_params

        def params():
            p = default()
            p.use_extra_bufts = extra
            return p

        bindings.llama_model_default_params = params
        try:
            yield
        finally:
            bindings.llama_model_default_params = default

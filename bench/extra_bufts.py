"""What the native-crash guard costs: llama.cpp's extra buffer types on and off, per weight file, side by side.

The guard (src/duologue/backends/embedded/guard.py) loads a weight file
without llama.cpp's extra buffer types (AMX kernels, repacked weights) where
its probe saw them crash or compute wrongly. Turning them off costs whatever
they gained where they work, so this measures each weight file of the shipped
model (Q4_1, Q8_0, BF16) both ways with the probe's own child
(`python -m duologue.backends.embedded.probe FILE --extra-bufts on|off --time`:
a lone turn's prompt chunk and single tokens on every core, a shard's steps of
four sequences on one thread), each configuration in a fresh process, the two
alternating, `--repeats` times (medians). A configuration that crashes is
reported as such (on an Intel Xeon with AMX, Q4_1 and Q8_0 with them on die by
SIGSEGV). It also times the probe itself, once per machine: deciding and
timing the three files from an empty cache.

    python bench/extra_bufts.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from duologue.backends.embedded import guard
from duologue.backends.embedded.catalogue import resolve_gguf
from duologue.backends.embedded.weights import AUTO_CHOICES, weights_path

RATES = ("lone_prompt_tps", "lone_decode_tps", "shard_decode_tps")


def measure(repeats: int = 3) -> dict:
    source = resolve_gguf("local/smollm2")
    files = {kind: weights_path(source, kind) for kind in AUTO_CHOICES}
    out: dict = {"files": {}}
    for kind, path in files.items():
        runs: dict[str, list[dict]] = {"on": [], "off": []}
        failures: dict[str, str] = {}
        for _ in range(repeats):
            for config in ("on", "off"):
                if config in failures:
                    continue
                child = guard.run_child(path, config == "on", timing=True)
                if child.failure is not None or child.result is None:
                    failures[config] = child.failure or "printed nothing"
                else:
                    runs[config].append(child.result["timing"])
        out["files"][kind] = {
            config: (
                {"failure": failures[config]}
                if config in failures
                else {rate: statistics.median(t[rate] for t in runs[config]) for rate in RATES}
            )
            for config in ("on", "off")
        }
    # The probe's one-time cost on this machine: an empty cache, the three files decided and timed.
    saved = os.environ.get("DUOLOGUE_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DUOLOGUE_CACHE_DIR"] = cache
        t0 = time.perf_counter()
        try:
            for path in files.values():
                guard.verdict(path, timing=True, say=lambda line: None)
        finally:
            if saved is None:
                os.environ.pop("DUOLOGUE_CACHE_DIR", None)
            else:
                os.environ["DUOLOGUE_CACHE_DIR"] = saved
        out["probe_s"] = time.perf_counter() - t0
    return out


def rows(result: dict) -> list[tuple[str, str, str]]:
    """(what, measured on / off, ratio) lines for bench/run.py's table."""
    lines = []
    for kind, both in result["files"].items():
        on, off = both["on"], both["off"]
        for rate, label in (("lone_decode_tps", "lone decode"), ("shard_decode_tps", "batched shard")):
            if "failure" in off:
                measured, ratio = f"without them the probe {off['failure']}", ""
            elif "failure" in on:
                measured, ratio = f"{on['failure'].removeprefix('was ')} / {off[rate]:.0f}", "guarded"
            else:
                measured, ratio = f"{on[rate]:.0f} / {off[rate]:.0f}", f"{on[rate] / off[rate]:.2f}x"
            lines.append((f"{kind.upper()} {label}: extra buffer types on / off (tok/s)", measured, ratio))
    lines.append(("the probe, once per machine: the three files decided and timed", f"{result['probe_s']:.1f}s", ""))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    result = measure(args.repeats)
    print(f"llama-cpp-python {guard.build_id()}; CPU features llama.cpp uses: {guard.system_info()}")
    for what, measured, ratio in rows(result):
        print(f"{what:62}  {measured:>30}  {ratio}")


if __name__ == "__main__":
    main()

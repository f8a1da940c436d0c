"""`python -m llama_cpp.server`, loading its model with llama.cpp's extra buffer types as duologue's probe
decides (src/duologue/backends/embedded/guard.py). On a CPU where they crash (an Intel Xeon with AMX), the
server as it is would segfault at its first request; its `Llama` has no argument for them, so its default
model parameters are set here before the server starts. Used as the server's command by conftest.py:

    python tests/guarded_llama_server.py --model GGUF [llama_cpp.server's options]
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import llama_cpp.llama_cpp as bindings

from duologue.backends.embedded.guard import verdict


def main() -> None:
    model = Path(sys.argv[sys.argv.index("--model") + 1])
    extra = verdict(model).extra_bufts
    default = bindings.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = extra
        return p

    bindings.llama_model_default_params = params  # this process loads one model: set for its lifetime
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

"""Start llama-cpp-python's OpenAI-compatible server with weight repacking off.

Run as a child process by the remote tests: `python serve_llama.py MODEL PORT`.
llama_cpp.server has no option for llama.cpp's `use_extra_bufts`, and on CPUs
whose repacked (AMX) kernels crash, the first multi-token decode would kill the
server; so, as app.engine.llama_hooks does in our own worker, the model
parameters' defaults are wrapped before the server builds its Llama.
"""

from __future__ import annotations

import sys

import llama_cpp
import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings


def repacking_off() -> None:
    original = llama_cpp.llama_cpp.llama_model_default_params
    fields = {f[0] for f in llama_cpp.llama_cpp.llama_model_params._fields_}

    def params_without_repacking():  # type: ignore[no-untyped-def]
        params = original()
        if "use_extra_bufts" in fields:
            params.use_extra_bufts = False
        return params

    llama_cpp.llama_cpp.llama_model_default_params = params_without_repacking


def main() -> None:
    model, port = sys.argv[1], int(sys.argv[2])
    repacking_off()
    app = create_app(
        # By default this server cuts a streaming reply short (a bare [DONE]) as
        # soon as another request waits; requests must queue for the load test.
        server_settings=ServerSettings(host="127.0.0.1", port=port, interrupt_requests=False),
        model_settings=[
            ModelSettings(
                model=model, model_alias="smollm2", n_ctx=1024, n_threads=2, verbose=False
            )
        ],
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()

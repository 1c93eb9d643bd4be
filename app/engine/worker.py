"""The engine worker process: the only place that imports llama_cpp.

llama.cpp can abort the whole process on a malformed file or out of memory,
so it lives in a child started with the "spawn" method. The parent
(app.engine.local.LocalEngine) sends commands over a Pipe; this process
answers with the event dataclasses of app.engine.events. Cancel is a shared
multiprocessing.Event checked between tokens.

stderr (fd 2) is redirected to a log file so the parent can show the last
llama.cpp lines after a crash, including abort messages that bypass the log
callback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from app.engine import events as ev
from app.engine.cache_text import CacheText
from app.engine.chat_template import ChatTemplate, TemplateError, checked_template
from app.engine.fault_injection import FAULT_ENV, load_limits, maybe_crash, turn_connection
from app.engine.kv_log import parse_kv_report
from app.engine.llama_hooks import ModelParamsHook, log_ring, on_llama_log, redirect_output
from app.engine.log_marks import LOAD_MARK, WARM_UP_MARK
from app.engine.native_decode import NativeDecoder
from app.engine.prompting import PLAIN_STOP, Message, plain_prompt
from app.engine.thread_probe import run_tune
from app.engine.turn_runner import run_turn
from app.metrics import ns_to_ms
from app.models.fit import trained_context_warning
from app.models.gguf_file import quantization_name
from app.models.names import display_name
from app.settings import KV_CACHE_TYPES, RuntimeSettings

# Fault injection for the tests of the repack fallback, read only here: with
# extra buffers allowed, the worker dies with SIGSEGV where llama.cpp's AMX
# kernels were seen to ("warmup": the load's warm-up; "first-turn": the first
# prefill after a load), so the fallback can be tested on any CPU. The same
# variable injects crashes and a memory limit (app.engine.fault_injection).

# The warm-up batch: at least 32 tokens, so prefill's matrix kernels run (a
# single token takes the matrix-vector path and misses the crash).
WARM_UP_TOKENS = 32


def _log_mark(mark: str) -> None:
    os.write(2, f"{mark}\n".encode())


def llama_cpp_module() -> Any:
    """llama_cpp, imported in this module only.

    Every process that runs llama.cpp (this worker, the batch worker, the prompt
    tokenizer and log-prob children) takes the module from here, so the import stays
    in one place and never happens in the GUI or CLI process by accident.
    """
    import llama_cpp  # noqa: PLC0415 - only ever imported in a worker process

    return llama_cpp


def _inject_fault(where: str, use_extra_bufts: bool) -> None:
    if use_extra_bufts and os.environ.get(FAULT_ENV) == where:
        os.kill(os.getpid(), signal.SIGSEGV)


@contextlib.contextmanager
def _llama_templates_skipped(llama_cpp: Any) -> Iterator[None]:
    """Llama() compiles every chat template in the file into chat handlers we never
    use (a syntax error there failed the whole load). We render the template
    ourselves, sandboxed and time-limited (app.engine.chat_template)."""
    module = llama_cpp.llama_chat_format
    original = module.Jinja2ChatFormatter

    class Unused:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def to_chat_handler(self) -> Any:
            return None

    module.Jinja2ChatFormatter = Unused
    try:
        yield
    finally:
        module.Jinja2ChatFormatter = original


class Loaded:
    """A model and context, plus what the decode loop needs about them."""

    def __init__(self, path: str, settings: RuntimeSettings, use_extra_bufts: bool) -> None:
        import llama_cpp  # noqa: PLC0415 - only ever imported in this process

        self.llama_cpp = llama_cpp
        self.path = path
        self.settings = settings
        self.use_extra_bufts = use_extra_bufts
        self.turns = 0  # turns served since the load (the fault injection needs the first)
        log_ring.clear()
        started = time.monotonic_ns()
        kv_type = KV_CACHE_TYPES[settings.kv_cache_type]
        with _llama_templates_skipped(llama_cpp):
            self.llm = llama_cpp.Llama(
                model_path=path,
                n_ctx=settings.n_ctx,
                n_gpu_layers=settings.n_gpu_layers,
                n_threads=settings.n_threads,
                n_threads_batch=settings.n_threads_batch or settings.n_threads,
                n_batch=settings.n_batch,
                flash_attn=settings.flash_attn,
                type_k=kv_type,
                type_v=kv_type,
                verbose=True,  # our log callback decides where the text goes
            )
        self._warm_up()
        self.load_ms = ns_to_ms(time.monotonic_ns() - started)
        self.model = self.llm._model
        self.vocab = self.model.vocab
        self.n_ctx = self.llm.n_ctx()
        self.n_vocab = self.llm.n_vocab()
        self.native = NativeDecoder(llama_cpp, self.llm)  # the decode loop's llama.cpp calls
        self.cache_text = CacheText()  # the KV cache's token ids and the text they stand for
        meta = self.llm.metadata
        self.template: str | None = meta.get("tokenizer.chat_template")
        # The template is untrusted code from the file: sandboxed and time-limited
        # (app.engine.chat_template); one that fails its check leaves the plain format.
        self.formatter: ChatTemplate | None = None
        self.template_note = ""
        if self.template:
            eos, bos = self.model.token_eos(), self.model.token_bos()
            self.formatter, self.template_note = checked_template(
                self.template,
                bos_token=self.model.token_get_text(bos) if bos != -1 else "",
                eos_token=self.model.token_get_text(eos) if eos != -1 else "",
            )
        self.kv_report = parse_kv_report(log_ring)
        self.kv_cells_total = self.kv_report.cells or self.n_ctx
        self.kv_bytes_per_cell = self._kv_bytes_per_cell(meta, kv_type)
        self.kv_bytes_total = self.kv_bytes_per_cell * self.kv_cells_total
        reported = self.kv_report.buffer_mib
        if reported is not None and abs(self.kv_bytes_total / 2**20 - reported) > 0.01:
            # An architecture our formula does not cover (sliding window,
            # recurrent state): trust llama.cpp's own figure.
            self.kv_bytes_total = round(reported * 2**20)
            self.kv_bytes_per_cell = self.kv_bytes_total // max(1, self.kv_cells_total)

    def _warm_up(self) -> None:
        """Run the kernels a turn uses once before the first turn.

        One batch of WARM_UP_TOKENS (prefill's matrix-matrix kernels) and one
        single-token step (decode's matrix-vector kernels). A kernel that
        crashes on this CPU (llama.cpp's AMX repacked weights, seen with
        SIGSEGV) then crashes during the load, where the parent can fall back,
        instead of on the user's first message. It also pays for page faults on
        the mapped weights and thread start-up, which would otherwise land in
        turn 1's TTFT. It is counted in load_ms.
        """
        llm = self.llm
        bos = llm._model.token_bos()
        n_vocab = llm.n_vocab()
        # Any valid ids will do: the kernels, not the text, are being exercised.
        batch = [bos if bos >= 0 else 0] + [(100 + i) % n_vocab for i in range(WARM_UP_TOKENS - 1)]
        _log_mark(WARM_UP_MARK)
        _inject_fault("warmup", self.use_extra_bufts)
        llm.eval(batch)
        llm.eval([batch[-1]])
        llm.reset()
        memory = self.llama_cpp.llama_get_memory(llm.ctx)
        self.llama_cpp.llama_memory_clear(memory, True)

    def _kv_bytes_per_cell(self, meta: dict[str, str], kv_type: int) -> int:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: PLC0415

        arch = meta.get("general.architecture", "llama")
        n_layer = self.llama_cpp.llama_model_n_layer(self.model.model)
        n_head = int(meta.get(f"{arch}.attention.head_count", "1"))
        n_head_kv = int(meta.get(f"{arch}.attention.head_count_kv", str(n_head)))
        n_embd = self.llama_cpp.llama_model_n_embd(self.model.model)
        k_len = int(meta.get(f"{arch}.attention.key_length", str(n_embd // max(1, n_head))))
        v_len = int(meta.get(f"{arch}.attention.value_length", str(k_len)))
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(kv_type)]
        row = (n_head_kv * k_len // block + n_head_kv * v_len // block) * type_size
        return int(n_layer * row)

    def loaded_event(self) -> ev.ModelLoaded:
        lc = self.llama_cpp
        n_layer = lc.llama_model_n_layer(self.model.model)
        gpu = bool(lc.llama_supports_gpu_offload())
        wanted = self.settings.n_gpu_layers
        offloaded = 0
        if gpu:
            offloaded = n_layer if wanted < 0 else min(wanted, n_layer)
        backend = "CPU"
        if offloaded:
            info = lc.llama_print_system_info().decode(errors="replace")
            backend = next(
                (b for b in ("CUDA", "Metal", "Vulkan", "ROCm", "SYCL") if b in info), "GPU"
            )
        meta = self.llm.metadata
        n_ctx_train = lc.llama_model_n_ctx_train(self.model.model)
        file_type = meta.get("general.file_type", "")
        quant = quantization_name(int(file_type)) if file_type.isdigit() else None
        return ev.ModelLoaded(
            model_path=self.path,
            model_name=display_name(meta, self.path, quant),
            general_name=meta.get("general.name", ""),
            load_ms=self.load_ms,
            n_layers=n_layer,
            n_layers_offloaded=offloaded,
            backend=backend,
            gpu_offload_supported=gpu,
            n_ctx=self.n_ctx,
            n_ctx_train=n_ctx_train,
            context_note=trained_context_warning(self.n_ctx, n_ctx_train),
            n_threads=self.settings.n_threads or 0,  # resolved by the parent before the load
            kv_bytes_per_token=self.kv_bytes_per_cell,
            kv_bytes_total=self.kv_bytes_total,
            kv_cells_total=self.kv_cells_total,
            kv_buffer_mib_reported=self.kv_report.buffer_mib,
            model_buffer_mib_reported=self.kv_report.model_mib,
            compute_buffer_mib_reported=self.kv_report.compute_mib,
            has_chat_template=self.formatter is not None,
            chat_format="template" if self.formatter is not None else "plain",
            chat_template_note=self.template_note,
            n_params=self.model.n_params(),
            model_size_bytes=self.model.size(),
            settings=self.settings.to_dict(),
            repack=self.settings.repack,
            repack_used=self.use_extra_bufts,
            extra_buffers_mib=dict(self.kv_report.extra_mib),
            system_info=lc.llama_print_system_info().decode(errors="replace").strip(),
        )

    # -- prompt -------------------------------------------------------------

    def tokenize_chat(self, messages: Sequence[Message]) -> tuple[list[int], tuple[str, ...]]:
        text, add_bos, stops = self.render_chat(messages)
        return self.tokenize_prompt(text, add_bos), stops

    def tokenize_prompt(self, text: bytes, add_bos: bool) -> list[int]:
        """Token ids for a rendered prompt; the part the KV cache already holds keeps
        the ids it has there (app.engine.cache_text)."""
        return self.cache_text.tokenize(text, add_bos, self._tokenize)

    def _tokenize(self, text: bytes, add_bos: bool) -> list[int]:
        return self.llm.tokenize(text, add_bos=add_bos, special=True)

    def render_chat(self, messages: Sequence[Message]) -> tuple[bytes, bool, tuple[str, ...]]:
        """The prompt text, whether a BOS token goes before it, and the format's stops.

        A history that ends with an assistant message is a reply to continue (Continue
        on a reply cut at the token limit): the turns before it are rendered with the
        assistant's opening, and its text follows as is, so the model goes on from it.
        """
        stops: tuple[str, ...]
        text = None
        continued = ""
        if messages and messages[-1]["role"] == "assistant":
            continued, messages = messages[-1]["content"], messages[:-1]
        if self.formatter is not None:
            try:
                # The template writes its own BOS when it wants one.
                text, add_bos, stops = self.formatter.render(messages), False, ()
            except TemplateError as exc:
                # This conversation only (e.g. roles it refuses): the plain format answers.
                print(f"glassbox: {exc}; this turn uses the plain prompt format", file=sys.stderr)
        if text is None:
            text, add_bos, stops = plain_prompt(messages), True, PLAIN_STOP
            continued = f" {continued}" if continued else ""  # after "Assistant:"
        return (text + continued).encode("utf-8"), add_bos, stops

    def cached_prefix(self, tokens: list[int]) -> int:
        """How many prompt tokens the KV cache can give this prompt.

        Llama.generate's rule, which the native loop (app.engine.native_decode)
        follows too: all of them only when the cache holds exactly this prompt
        with live logits; otherwise the common prefix, less one when the prompt
        is all prefix (a token must be evaluated to have logits to sample from).
        """
        llm = self.llm
        if llm.n_tokens == 0:
            return 0
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), tokens):
            if a != b:
                break
            common += 1
        consumed = common == len(tokens)
        if consumed and llm.n_tokens == len(tokens) and not llm._requires_eval:
            return len(tokens)
        return common - 1 if consumed else common

    def kv_cells_used(self) -> int:
        memory = self.llama_cpp.llama_get_memory(self.llm.ctx)
        return int(self.llama_cpp.llama_memory_seq_pos_max(memory, 0)) + 1


def _load(
    payload: dict[str, Any], conn: Connection, cancel: EventType, hook: ModelParamsHook
) -> Loaded | None:
    """Load a model; on failure report it and return None (the previous model stays)."""
    settings = RuntimeSettings.from_dict(payload["settings"])
    load_id = payload.get("load_id", 0)
    use_extra_bufts = bool(payload.get("use_extra_bufts", True)) and hook.supports_extra_bufts
    hook.reset(use_extra_bufts)
    _log_mark(f"{LOAD_MARK} {payload['path']} (extra buffers {'on' if use_extra_bufts else 'off'})")
    try:
        with load_limits():
            maybe_crash("load")
            loaded = Loaded(payload["path"], settings, use_extra_bufts)
    except ValueError as exc:
        message = (
            "model loading cancelled"
            if cancel.is_set()
            else f"llama.cpp could not load {Path(payload['path']).name}: {exc}"
        )
        conn.send(ev.EngineError(message=message, load_id=load_id))
        return None
    event = loaded.loaded_event()
    event.load_id = load_id
    event.repack_note = payload.get("repack_note", "")
    conn.send(event)
    return loaded


def _send_all(conn: Connection, events: Sequence[ev.EngineEvent]) -> None:
    for event in events:
        conn.send(event)


def worker_main(conn: Connection, cancel: EventType, log_path: str) -> None:
    """Entry point of the child process: serve commands until "close" or EOF."""
    # Ctrl+C in a terminal signals the whole foreground process group; the
    # parent turns it into a cancel, and the worker must not die of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    redirect_output(log_path)
    import llama_cpp  # noqa: PLC0415

    callback = llama_cpp.llama_log_callback(on_llama_log)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    hook = ModelParamsHook(llama_cpp, conn, cancel)
    model: Loaded | None = None
    while True:
        try:
            command, payload = conn.recv()
        except (EOFError, OSError):
            return
        if command == "close":
            return
        try:
            if command == "load":
                model = _load(payload, conn, cancel, hook) or model
            elif command == "chat":
                if model is None:
                    _send_all(conn, ev.failed_turn(payload["request_id"], "no model is loaded"))
                    continue
                model.turns += 1
                if model.turns == 1:
                    _inject_fault("first-turn", model.use_extra_bufts)
                run_turn(model, turn_connection(conn), cancel, payload)
            elif command == "tune":
                run_tune(model, conn, cancel, payload)
        except (BrokenPipeError, EOFError):
            return
        except Exception as exc:  # report, keep serving
            traceback.print_exc()
            request_id = payload.get("request_id") if isinstance(payload, dict) else None
            message = f"engine error: {type(exc).__name__}: {exc}"
            if command == "chat":
                _send_all(conn, ev.failed_turn(request_id, message))
            else:
                load_id = payload.get("load_id") if isinstance(payload, dict) else None
                conn.send(ev.EngineError(message=message, load_id=load_id))

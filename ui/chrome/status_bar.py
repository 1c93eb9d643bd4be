"""Status bar: model, backend and offload, n_ctx, threads, KV cache size, engine state."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from app.engine.events import ModelLoaded
from app.models.fit import format_bytes
from app.models.fit_check import MemoryRow

STATE_COLORS = {
    "loading": "#E69F00",
    "ready": "#009E73",
    "generating": "#0072B2",
    "crashed": "#D55E00",
}


CONTEXT_TIP = "Context size n_ctx in tokens (KV cache cells)"
# How long a notice from the engine (a repack fallback) stays in the status bar.
NOTICE_MS = 30_000


class EngineStatusBar(QStatusBar):
    """Shows what is loaded and what the engine is doing."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Status bar")
        self.model_label = self._label("Model", "The loaded GGUF model")
        self.backend_label = self._label(
            "Backend", "Where the layers run: CPU, or GPU with layers offloaded"
        )
        self.ctx_label = self._label("Context", CONTEXT_TIP)
        self.threads_label = self._label("Threads", "CPU threads used for inference")
        self.kv_label = self._label("KV cache", "Memory reserved for the KV cache at this n_ctx")
        self.memory_label = self._label(
            "Memory", "Memory llama.cpp allocated, next to the estimate made before loading"
        )
        self.state_label = self._label(
            "Engine state", "idle, loading, ready, generating or crashed"
        )
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)  # llama.cpp's own load progress (ModelLoadProgress)
        self.progress.setMaximumWidth(120)
        self.progress.setAccessibleName("Model loading progress")
        self.progress.setToolTip(
            "The model is loading in the engine process; the window stays usable"
        )
        # Showing the bar must not re-lay out the window: a relayout resizes and
        # repaints every plot, a 50 ms stall on a 2-core machine.
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress.setSizePolicy(policy)
        self.progress.hide()
        for label in (
            self.model_label,
            self.backend_label,
            self.ctx_label,
            self.threads_label,
            self.kv_label,
            self.memory_label,
        ):
            self.addPermanentWidget(label)
        self.addPermanentWidget(self.progress)
        self.addPermanentWidget(self.state_label)
        self.set_state("idle")

    def _label(self, name: str, tip: str) -> QLabel:
        label = QLabel("")
        label.setAccessibleName(name)
        label.setToolTip(tip)
        return label

    def set_memory_rows(self, rows: list[MemoryRow]) -> None:
        """The estimate made before loading next to what llama.cpp reported (tooltip table)."""
        total = rows[-1]
        shown = total.reported_bytes if total.reported_bytes is not None else total.estimate_bytes
        self.memory_label.setText(f"mem {format_bytes(shown)}")
        lines = "".join(
            f"<tr><td>{row.part}</td><td align=right>{format_bytes(row.estimate_bytes)}</td>"
            f"<td align=right>{format_bytes(row.reported_bytes)}</td><td>{row.note}</td></tr>"
            for row in rows
        )
        self.memory_label.setToolTip(
            f"<table><tr><th></th><th>estimated</th><th>llama.cpp</th></tr>{lines}</table>"
        )

    def set_model_info(self, info: ModelLoaded) -> None:
        self.model_label.setText(info.model_name or info.model_path.rsplit("/", 1)[-1])
        self.model_label.setToolTip(
            f"{info.model_path}\ngeneral.name: {info.general_name}"
            if info.general_name
            else info.model_path
        )
        if info.n_layers_offloaded >= info.n_layers > 0:
            backend = f"{info.backend} · all {info.n_layers} layers on GPU"
        elif info.n_layers_offloaded > 0:
            backend = f"{info.backend} · {info.n_layers_offloaded} of {info.n_layers} layers on GPU"
        else:
            backend = f"CPU only · 0 of {info.n_layers} layers on GPU"
        if info.extra_buffers_mib:
            backend += " + " + "/".join(sorted(info.extra_buffers_mib))
        self.backend_label.setText(backend)
        repack = f"Weight repacking: {info.repack}, {'allowed' if info.repack_used else 'off'}" + (
            f" ({info.repack_note})" if info.repack_note else ""
        )
        self.backend_label.setToolTip(
            "Where the layers run: CPU, or GPU with layers offloaded, and the CPU-specific "
            f"weight layouts llama.cpp made (AMX, CPU_REPACK).\n{repack}"
        )
        if info.repack_note:
            # Plain words for what the engine did on its own, e.g. after a kernel crash.
            self.showMessage(info.repack_note, NOTICE_MS)
        elif info.chat_template_note:
            # The model's chat template failed its sandboxed check; the plain format is used.
            self.showMessage(info.chat_template_note, NOTICE_MS)
        elif info.context_note:
            self.showMessage(f"⚠ {info.context_note}", NOTICE_MS)
        ctx = (
            f"n_ctx {info.n_ctx} ⚠ trained {info.n_ctx_train}"
            if info.context_note
            else f"n_ctx {info.n_ctx}"
        )
        tip = info.context_note or CONTEXT_TIP
        sequences = int(info.settings.get("n_parallel") or 1)
        if sequences > 1:  # batched decode: the sequences share the context
            ctx += f" · {sequences} sequences"
            tip += (
                f"\n{sequences} parallel sequences (batched decode): replies in different "
                f"conversations share each decode step, each with {info.n_ctx // sequences} "
                "tokens of the context"
            )
        self.ctx_label.setText(ctx)
        self.ctx_label.setToolTip(tip)
        batch = info.settings.get("n_threads_batch") or info.n_threads
        self.threads_label.setText(
            f"{info.n_threads} threads"
            if batch == info.n_threads
            else f"{info.n_threads} decode / {batch} prefill threads"
        )
        source = {
            "tuned": "the counts measured fastest on this machine (Settings > Threads)",
            "explicit": "set in Settings or with --threads",
            "default": "every usable core; not measured yet",
        }.get(info.threads_source, "")
        self.threads_label.setToolTip(
            "CPU threads used for inference" + (f": {source}" if source else "")
        )
        self.kv_label.setText(f"KV {info.kv_bytes_total / (1024 * 1024):.1f} MiB")

    def set_load_progress(self, fraction: float) -> None:
        self.progress.setValue(round(fraction * 100))

    def set_state(self, state: str) -> None:
        if state == "loading" and not self.progress.isVisible():
            self.progress.setValue(0)
        self.progress.setVisible(state == "loading")
        color = STATE_COLORS.get(state)
        text = f"<b>{state}</b>"
        self.state_label.setText(f"<span style='color:{color}'>{text}</span>" if color else text)
        self.state_label.setProperty("engine_state", state)

    def state(self) -> str:
        return str(self.state_label.property("engine_state"))

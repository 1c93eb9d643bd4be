"""The Runtime page of the settings dialog: what is fixed when the model loads."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.models.fit import trained_context_warning
from app.settings import (
    GPU_LAYERS_ALL,
    KV_CACHE_TYPES,
    MAX_PARALLEL_SEQUENCES,
    REPACK_MODES,
    RuntimeSettings,
)
from ui.dialogs.forms import spin_box, with_tip

GPU_BUILD_HINT = (
    "This llama-cpp-python build has no GPU support. To offload layers, reinstall it with a GPU "
    'backend, e.g. CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python (Metal: -DGGML_METAL=on, Vulkan: -DGGML_VULKAN=on)."
)
REPACK_TIP = (
    "Weight repacking: at load time llama.cpp can keep the weights in a second layout made "
    "for this CPU's instructions (AMX tiles on recent Xeons, interleaved blocks elsewhere), "
    "which can make prefill and decode faster.\n"
    "auto: repack; if those kernels crash the engine, load again without repacking and "
    "remember that for this CPU and model.\n"
    "on: always repack. off: never; the plain layout, slower on some CPUs, works everywhere."
)


class RuntimeForm(QWidget):
    """Edits a RuntimeSettings; fields it does not show keep the values it was given.

    Signals:
        changed(): any field was edited.
    """

    changed = Signal()

    def __init__(
        self,
        runtime: RuntimeSettings,
        n_layers: int = 0,
        gpu_offload_supported: bool = False,
        parent: QWidget | None = None,
        n_ctx_train: int = 0,
    ) -> None:
        super().__init__(parent)
        self._base = runtime
        self._n_ctx_train = n_ctx_train  # the loaded model's trained context; 0: unknown
        self._n_layers = max(n_layers, 0)
        # Ranges are wide on purpose so validate() can say why a value is refused.
        self.n_ctx = with_tip(
            spin_box(0, 2_000_000, runtime.n_ctx),
            "Context size",
            "n_ctx: tokens the KV cache holds (prompt + reply); more costs memory",
        )
        self.gpu_layers = with_tip(
            QSlider(Qt.Orientation.Horizontal),
            "GPU layers",
            "Layers to offload to the GPU (0: all on CPU)",
        )
        self.gpu_layers.setRange(0, max(self._n_layers, 1))
        self.gpu_all = with_tip(
            QCheckBox("all"), "Offload all layers", "Offload every layer (n_gpu_layers = -1)"
        )
        self.gpu_value = QLabel()
        if runtime.n_gpu_layers == GPU_LAYERS_ALL:
            self.gpu_all.setChecked(True)
            self.gpu_layers.setValue(self.gpu_layers.maximum())
        else:
            self.gpu_layers.setValue(min(runtime.n_gpu_layers, self.gpu_layers.maximum()))
        self.threads = with_tip(
            spin_box(0, 1024, runtime.n_threads or 0),
            "Decode threads",
            "CPU threads for decode, one token at a time (auto: the count measured fastest "
            "on this machine with the window streaming, else every usable core)",
        )
        self.threads_batch = with_tip(
            spin_box(0, 1024, runtime.n_threads_batch or runtime.n_threads or 0),
            "Prefill threads",
            "CPU threads for prefill, the prompt evaluated in parallel (auto: measured)",
        )
        for spin in (self.threads, self.threads_batch):
            spin.setSpecialValueText("auto")  # 0: threads not set, the engine chooses
        self.n_batch = with_tip(
            spin_box(0, 65536, runtime.n_batch),
            "Batch size",
            "n_batch: prompt tokens evaluated per step during prefill",
        )
        self.n_parallel = with_tip(
            spin_box(0, 64, runtime.n_parallel),
            "Parallel sequences",
            f"Requests decoded together, 1..{MAX_PARALLEL_SEQUENCES}: with more than 1, several "
            "conversations (or API requests) share each decode step, one sequence each "
            "(batched decode): more tokens per second in total, each a little slower, and a "
            "request waits in the queue only until a sequence is free. They share the context: "
            "each gets n_ctx / N tokens. 1: one request at a time, the plain engine.",
        )
        self.flash_attn = with_tip(
            QCheckBox(), "Flash attention", "Use flash attention (needed for a quantized KV cache)"
        )
        self.flash_attn.setChecked(runtime.flash_attn)
        self.kv_type = with_tip(
            QComboBox(),
            "KV cache type",
            "Element type of the KV cache; quantized types save memory",
        )
        self.kv_type.addItems(list(KV_CACHE_TYPES))
        self.kv_type.setCurrentText(runtime.kv_cache_type)
        self.repack = with_tip(QComboBox(), "Weight repacking", REPACK_TIP)
        self.repack.addItems(list(REPACK_MODES))
        self.repack.setCurrentText(runtime.repack)
        self.gpu_hint = QLabel(GPU_BUILD_HINT)
        self.gpu_hint.setWordWrap(True)
        self.gpu_hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.gpu_hint.setAccessibleName("GPU build hint")
        self.gpu_hint.setVisible(not gpu_offload_supported)
        for widget in (self.gpu_layers, self.gpu_all):
            widget.setEnabled(gpu_offload_supported)
            if not gpu_offload_supported:
                widget.setToolTip(GPU_BUILD_HINT)

        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_layers, 1)
        gpu_row.addWidget(self.gpu_value)
        gpu_row.addWidget(self.gpu_all)
        self.form = QFormLayout()
        # Shown while n_ctx is beyond what the loaded model was trained on.
        self.context_warning = QLabel()
        self.context_warning.setWordWrap(True)
        self.context_warning.setAccessibleName("Context warning")
        self.form.addRow("Context (n_ctx)", self.n_ctx)
        self.form.addRow("", self.context_warning)
        self.form.addRow("GPU layers", gpu_row)
        self.form.addRow("", self.gpu_hint)
        self.form.addRow("Decode threads", self.threads)
        self.form.addRow("Prefill threads", self.threads_batch)
        self.form.addRow("Batch size", self.n_batch)
        self.form.addRow("Parallel sequences", self.n_parallel)
        self.form.addRow("Flash attention", self.flash_attn)
        self.form.addRow("KV cache type", self.kv_type)
        self.form.addRow("Weight repacking", self.repack)
        note = QLabel(
            "Runtime settings apply by reloading the model; the window stays usable meanwhile."
        )
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(note)
        layout.addStretch(1)

        for spin in (self.n_ctx, self.threads, self.threads_batch, self.n_batch, self.n_parallel):
            spin.valueChanged.connect(self._on_field_changed)
        self.gpu_layers.valueChanged.connect(self._on_field_changed)
        self.gpu_all.toggled.connect(self._on_field_changed)
        self.flash_attn.toggled.connect(self._on_field_changed)
        self.kv_type.currentTextChanged.connect(self._on_field_changed)
        self.repack.currentTextChanged.connect(self._on_field_changed)
        self._show_gpu_layers()
        self._show_context_warning()

    def set_trained_context(self, n_ctx_train: int) -> None:
        """The loaded model's trained context length (ModelLoaded.n_ctx_train)."""
        self._n_ctx_train = n_ctx_train
        self._show_context_warning()

    def value(self) -> RuntimeSettings:
        """The edited settings (not validated)."""
        layers = GPU_LAYERS_ALL if self.gpu_all.isChecked() else self.gpu_layers.value()
        if not self.gpu_all.isEnabled():  # no GPU support in this build
            layers = 0
        return self._base.with_changes(
            n_ctx=self.n_ctx.value(),
            n_gpu_layers=layers,
            n_threads=self.threads.value() or None,
            # None means "same as decode", so equal values stay the plain default.
            n_threads_batch=(
                None
                if self.threads_batch.value() == self.threads.value()
                else self.threads_batch.value() or None
            ),
            n_batch=self.n_batch.value(),
            n_parallel=self.n_parallel.value(),
            flash_attn=self.flash_attn.isChecked(),
            kv_cache_type=self.kv_type.currentText(),
            repack=self.repack.currentText(),
        )

    def _show_gpu_layers(self) -> None:
        all_layers = self.gpu_all.isChecked()
        self.gpu_value.setText(
            "all" if all_layers else f"{self.gpu_layers.value()} / {self._n_layers}"
        )
        self.gpu_layers.setEnabled(self.gpu_all.isEnabled() and not all_layers)

    def _show_context_warning(self) -> None:
        warning = trained_context_warning(self.n_ctx.value(), self._n_ctx_train)
        self.context_warning.setText(f"⚠ {warning}" if warning else "")
        self.context_warning.setVisible(bool(warning))

    def _on_field_changed(self, *_args: Any) -> None:
        self._show_gpu_layers()
        self._show_context_warning()
        self.changed.emit()

"""Settings dialog: runtime settings (applied by reloading the model) and sampling settings.

Values are checked with the core's own validate() as the user types; OK stays
disabled and the reason is shown while anything is invalid.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.errors import SettingsError
from app.settings import GPU_LAYERS_ALL, KV_CACHE_TYPES, RuntimeSettings, SamplingSettings

GPU_BUILD_HINT = (
    "This llama-cpp-python build has no GPU support. To offload layers, reinstall it with a GPU "
    'backend, e.g. CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python (Metal: -DGGML_METAL=on, Vulkan: -DGGML_VULKAN=on)."
)
STOP_SEPARATOR = "|"


def _tip(widget: QWidget, name: str, tip: str) -> QWidget:
    widget.setAccessibleName(name)
    widget.setToolTip(tip)
    return widget


class SettingsDialog(QDialog):
    """Edits a RuntimeSettings and a SamplingSettings; read the result from runtime()/sampling()."""

    def __init__(
        self,
        runtime: RuntimeSettings,
        sampling: SamplingSettings,
        n_layers: int = 0,
        gpu_offload_supported: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self._n_layers = max(n_layers, 0)

        # Runtime: ranges are wide on purpose so validate() can say why a value is refused.
        self.n_ctx = _tip(
            self._spin(0, 2_000_000, runtime.n_ctx),
            "Context size",
            "n_ctx: tokens the KV cache holds (prompt + reply); more costs memory",
        )
        self.gpu_layers = _tip(
            QSlider(Qt.Orientation.Horizontal),
            "GPU layers",
            "Layers to offload to the GPU (0: all on CPU)",
        )
        self.gpu_layers.setRange(0, max(self._n_layers, 1))
        self.gpu_all = _tip(
            QCheckBox("all"), "Offload all layers", "Offload every layer (n_gpu_layers = -1)"
        )
        self.gpu_value = QLabel()
        if runtime.n_gpu_layers == GPU_LAYERS_ALL:
            self.gpu_all.setChecked(True)
            self.gpu_layers.setValue(self.gpu_layers.maximum())
        else:
            self.gpu_layers.setValue(min(runtime.n_gpu_layers, self.gpu_layers.maximum()))
        self.threads = _tip(
            self._spin(0, 1024, runtime.n_threads or 0),
            "Decode threads",
            "CPU threads for decode, one token at a time (auto: the count measured fastest "
            "on this machine with the window streaming, else every usable core)",
        )
        self.threads_batch = _tip(
            self._spin(0, 1024, runtime.n_threads_batch or runtime.n_threads or 0),
            "Prefill threads",
            "CPU threads for prefill, the prompt evaluated in parallel (auto: measured)",
        )
        for spin in (self.threads, self.threads_batch):
            spin.setSpecialValueText("auto")  # 0: threads not set, the engine chooses
        self.n_batch = _tip(
            self._spin(0, 65536, runtime.n_batch),
            "Batch size",
            "n_batch: prompt tokens evaluated per step during prefill",
        )
        self.flash_attn = _tip(
            QCheckBox(), "Flash attention", "Use flash attention (needed for a quantized KV cache)"
        )
        self.flash_attn.setChecked(runtime.flash_attn)
        self.kv_type = _tip(
            QComboBox(),
            "KV cache type",
            "Element type of the KV cache; quantized types save memory",
        )
        self.kv_type.addItems(list(KV_CACHE_TYPES))
        self.kv_type.setCurrentText(runtime.kv_cache_type)
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
        runtime_form = QFormLayout()
        runtime_form.addRow("Context (n_ctx)", self.n_ctx)
        runtime_form.addRow("GPU layers", gpu_row)
        runtime_form.addRow("", self.gpu_hint)
        runtime_form.addRow("Decode threads", self.threads)
        runtime_form.addRow("Prefill threads", self.threads_batch)
        runtime_form.addRow("Batch size", self.n_batch)
        runtime_form.addRow("Flash attention", self.flash_attn)
        runtime_form.addRow("KV cache type", self.kv_type)
        runtime_note = QLabel(
            "Runtime settings apply by reloading the model; the window stays usable meanwhile."
        )
        runtime_note.setWordWrap(True)
        runtime_page = QWidget()
        runtime_layout = QVBoxLayout(runtime_page)
        runtime_layout.addLayout(runtime_form)
        runtime_layout.addWidget(runtime_note)
        runtime_layout.addStretch(1)

        # Sampling: applies to the next request.
        self.temperature = _tip(
            self._dspin(-10, 10, sampling.temperature, 2, 0.05),
            "Temperature",
            "0: always the most likely token; higher: more random",
        )
        self.top_k = _tip(
            self._spin(-1, 100000, sampling.top_k),
            "Top-k",
            "Keep only the k most likely tokens (0: off)",
        )
        self.top_p = _tip(
            self._dspin(0, 1, sampling.top_p, 3, 0.01),
            "Top-p",
            "Keep the smallest set of tokens whose probabilities sum to p",
        )
        self.min_p = _tip(
            self._dspin(0, 1, sampling.min_p, 3, 0.01),
            "Min-p",
            "Drop tokens less likely than min-p times the top token",
        )
        self.repeat_penalty = _tip(
            self._dspin(0, 10, sampling.repeat_penalty, 2, 0.05),
            "Repeat penalty",
            "Above 1 discourages repeating recent tokens",
        )
        self.seed = _tip(
            QLineEdit("" if sampling.seed is None else str(sampling.seed)),
            "Seed",
            "Random seed for sampling; empty: a new seed every time",
        )
        self.seed.setPlaceholderText("random")
        self.max_tokens = _tip(
            self._spin(0, 1_000_000, sampling.max_tokens),
            "Max tokens",
            "Stop the reply after this many tokens",
        )
        self.stop = _tip(
            QLineEdit(STOP_SEPARATOR.join(sampling.stop)),
            "Stop strings",
            f"Strings that end the reply, separated by {STOP_SEPARATOR}",
        )
        sampling_form = QFormLayout()
        for label, widget in (
            ("Temperature", self.temperature),
            ("Top-k", self.top_k),
            ("Top-p", self.top_p),
            ("Min-p", self.min_p),
            ("Repeat penalty", self.repeat_penalty),
            ("Seed", self.seed),
            ("Max tokens", self.max_tokens),
            ("Stop strings", self.stop),
        ):
            sampling_form.addRow(label, widget)
        sampling_page = QWidget()
        sampling_layout = QVBoxLayout(sampling_page)
        sampling_layout.addLayout(sampling_form)
        sampling_layout.addWidget(QLabel("Sampling settings apply to the next request."))
        sampling_layout.addStretch(1)

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings pages")
        self.tabs.addTab(runtime_page, "Runtime")
        self.tabs.addTab(sampling_page, "Sampling")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #D55E00; font-weight: bold;")
        self.error_label.setAccessibleName("Settings error")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setAccessibleName("Apply settings")
        self.ok_button.setToolTip("Save; a changed runtime setting reloads the model")
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAccessibleName("Cancel settings")
        cancel.setToolTip("Close without changing anything")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        for widget in (
            self.n_ctx,
            self.threads,
            self.threads_batch,
            self.n_batch,
            self.top_k,
            self.max_tokens,
        ):
            widget.valueChanged.connect(self._on_field_changed)
        for widget in (self.temperature, self.top_p, self.min_p, self.repeat_penalty):
            widget.valueChanged.connect(self._on_field_changed)
        self.gpu_layers.valueChanged.connect(self._on_field_changed)
        self.gpu_all.toggled.connect(self._on_field_changed)
        self.flash_attn.toggled.connect(self._on_field_changed)
        self.kv_type.currentTextChanged.connect(self._on_field_changed)
        self.seed.textChanged.connect(self._on_field_changed)
        self.stop.textChanged.connect(self._on_field_changed)
        self._on_field_changed()

    @staticmethod
    def _spin(low: int, high: int, value: int) -> QSpinBox:
        box = QSpinBox()
        box.setRange(low, high)
        box.setValue(value)
        return box

    @staticmethod
    def _dspin(low: float, high: float, value: float, decimals: int, step: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setDecimals(decimals)
        box.setRange(low, high)
        box.setSingleStep(step)
        box.setValue(value)
        return box

    def runtime(self) -> RuntimeSettings:
        layers = GPU_LAYERS_ALL if self.gpu_all.isChecked() else self.gpu_layers.value()
        if not self.gpu_all.isEnabled():  # no GPU support in this build
            layers = 0
        return RuntimeSettings(
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
            flash_attn=self.flash_attn.isChecked(),
            kv_cache_type=self.kv_type.currentText(),
        )

    def sampling(self) -> SamplingSettings:
        seed_text = self.seed.text().strip()
        try:
            seed = int(seed_text) if seed_text else None
        except ValueError:
            raise SettingsError(
                f"seed must be a whole number or empty, got {seed_text!r}"
            ) from None
        stop_text = self.stop.text()
        stop = (
            tuple(s.strip() for s in stop_text.split(STOP_SEPARATOR)) if stop_text.strip() else ()
        )
        return SamplingSettings(
            temperature=round(self.temperature.value(), 4),
            top_k=self.top_k.value(),
            top_p=round(self.top_p.value(), 4),
            min_p=round(self.min_p.value(), 4),
            repeat_penalty=round(self.repeat_penalty.value(), 4),
            seed=seed,
            max_tokens=self.max_tokens.value(),
            stop=stop,
        )

    def validation_error(self) -> str | None:
        """None when both groups are valid, else the first reason."""
        try:
            self.runtime().validate()
            self.sampling().validate()
        except SettingsError as exc:
            return str(exc)
        return None

    def _on_field_changed(self, *_args: Any) -> None:
        all_layers = self.gpu_all.isChecked()
        self.gpu_value.setText(
            "all" if all_layers else f"{self.gpu_layers.value()} / {self._n_layers}"
        )
        self.gpu_layers.setEnabled(self.gpu_all.isEnabled() and not all_layers)
        error = self.validation_error()
        self.error_label.setText(error or "")
        self.error_label.setVisible(error is not None)
        self.ok_button.setEnabled(error is None)

    def accept(self) -> None:
        error = self.validation_error()
        if error is not None:  # OK is disabled, but Enter in a field still lands here
            self.error_label.setText(error)
            self.error_label.show()
            return
        super().accept()

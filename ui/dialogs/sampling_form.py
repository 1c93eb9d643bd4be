"""The Sampling page of the settings dialog: how the next reply picks its tokens."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from app.errors import SettingsError
from app.settings import SamplingSettings
from ui.dialogs.forms import double_spin_box, spin_box, with_tip

STOP_SEPARATOR = "|"


class SamplingForm(QWidget):
    """Edits a SamplingSettings; fields it does not show keep the values it was given.

    Signals:
        changed(): any field was edited.
    """

    changed = Signal()

    def __init__(self, sampling: SamplingSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._base = sampling
        self.temperature = with_tip(
            double_spin_box(-10, 10, sampling.temperature, 2, 0.05),
            "Temperature",
            "0: always the most likely token; higher: more random",
        )
        self.top_k = with_tip(
            spin_box(-1, 100000, sampling.top_k),
            "Top-k",
            "Keep only the k most likely tokens (0: off)",
        )
        self.top_p = with_tip(
            double_spin_box(0, 1, sampling.top_p, 3, 0.01),
            "Top-p",
            "Keep the smallest set of tokens whose probabilities sum to p",
        )
        self.min_p = with_tip(
            double_spin_box(0, 1, sampling.min_p, 3, 0.01),
            "Min-p",
            "Drop tokens less likely than min-p times the top token",
        )
        self.repeat_penalty = with_tip(
            double_spin_box(0, 10, sampling.repeat_penalty, 2, 0.05),
            "Repeat penalty",
            "Above 1 discourages repeating recent tokens",
        )
        self.seed = with_tip(
            QLineEdit("" if sampling.seed is None else str(sampling.seed)),
            "Seed",
            "Random seed for sampling; empty: a new seed every time",
        )
        self.seed.setPlaceholderText("random")
        self.max_tokens = with_tip(
            spin_box(0, 1_000_000, sampling.max_tokens),
            "Max tokens",
            "Stop the reply after this many tokens",
        )
        self.stop = with_tip(
            QLineEdit(STOP_SEPARATOR.join(sampling.stop)),
            "Stop strings",
            f"Strings that end the reply, separated by {STOP_SEPARATOR}",
        )
        self.form = QFormLayout()
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
            self.form.addRow(label, widget)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(QLabel("Sampling settings apply to the next request."))
        layout.addStretch(1)

        for spin in (self.top_k, self.max_tokens):
            spin.valueChanged.connect(self._on_field_changed)
        for dspin in (self.temperature, self.top_p, self.min_p, self.repeat_penalty):
            dspin.valueChanged.connect(self._on_field_changed)
        self.seed.textChanged.connect(self._on_field_changed)
        self.stop.textChanged.connect(self._on_field_changed)

    def value(self) -> SamplingSettings:
        """The edited settings (not validated); SettingsError when the seed is not a number."""
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
        return self._base.with_changes(
            temperature=round(self.temperature.value(), 4),
            top_k=self.top_k.value(),
            top_p=round(self.top_p.value(), 4),
            min_p=round(self.min_p.value(), 4),
            repeat_penalty=round(self.repeat_penalty.value(), 4),
            seed=seed,
            max_tokens=self.max_tokens.value(),
            stop=stop,
        )

    def _on_field_changed(self, *_args: Any) -> None:
        self.changed.emit()

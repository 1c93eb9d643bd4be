"""Inside a turn: the diagnosis, timeline, tail latency, KV cache and bandwidth views, as tabs.

The internals panel forwards the live calls it gets (set_model_info, begin_live,
add_tokens, end_live) here. During a turn they only append to a TraceRecorder;
the views are filled once, when the turn ends, so a fast stream costs nothing
here. Disk work (the GGUF header, the bandwidth cache or benchmark) runs on a
BackgroundTasks worker, never on the GUI thread, and only once its tab is shown: a
panel that nobody looks at this way starts no thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QTabWidget, QWidget

from app import bandwidth
from app.diagnosis import Diagnosis, diagnose_trace
from app.engine import events as ev
from app.kv_geometry import KvGeometry, context_fill, kv_geometry
from app.latency_stats import SessionLatency
from app.metrics import TurnMetrics
from app.models.gguf_file import read_gguf_info
from app.turn_timeline import build_timeline
from app.turn_trace import TraceRecorder, TurnTrace, child_pids
from ui.infra.tasks import BackgroundTasks
from ui.internals.bandwidth_view import BandwidthView
from ui.internals.diagnosis_view import DiagnosisView
from ui.internals.kv_view import KvView
from ui.internals.latency_view import LatencyView
from ui.internals.prompt_view import PromptView
from ui.internals.timeline_view import TimelineView
from ui.internals.token_view import TokenView


def _geometry_job(path: str, n_ctx: int, kv_type: str) -> KvGeometry:
    return kv_geometry(read_gguf_info(Path(path)), n_ctx, kv_type)


class InsideTabs(QTabWidget):
    """Views of the last turn's inside; fed by InternalsPanel.

    Signals:
        turn_shown(object): the views now show this finished TurnTrace.
    """

    turn_shown = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Inside the turn")
        self.setDocumentMode(True)
        self.recorder = TraceRecorder(child_pids)  # the worker is a child: its CPU is ours
        self.session_latency = SessionLatency()
        self.model: ev.ModelLoaded | None = None
        self.bandwidth_bytes_s: float | None = None
        self.last_trace: TurnTrace | None = None
        self.last_diagnosis: Diagnosis | None = None
        self._request_id: int | None = None
        self.tasks = BackgroundTasks(self, thread_name="glassbox-inside")
        self.diagnosis_view = DiagnosisView()
        self.timeline_view = TimelineView()
        self.latency_view = LatencyView()
        self.kv_view = KvView()
        self.bandwidth_view = BandwidthView()
        self.prompt_view = PromptView()
        self.token_view = TokenView()
        tabs: Sequence[tuple[QWidget, str, str]] = (
            (self.diagnosis_view, "Why slow?", "Which part of the last turn took the time"),
            (self.timeline_view, "Timeline", "The last turn to scale, from send to stop"),
            (self.latency_view, "Tail latency", "Inter-token latency and session percentiles"),
            (self.kv_view, "KV cache", "Cache cells and bytes, and how their size is computed"),
            (self.bandwidth_view, "Bandwidth", "The decode rate memory bandwidth allows"),
            (self.prompt_view, "Prompt", "The last prompt as the model's tokens"),
            (self.token_view, "Tokens", "The last reply's tokens and their probabilities"),
        )
        for widget, title, tip in tabs:
            index = self.addTab(widget, title)
            self.setTabToolTip(index, tip)
        self.bandwidth_view.remeasure_requested.connect(self._on_bandwidth_remeasure_requested)
        self._geometry_pending: ev.ModelLoaded | None = None
        self.currentChanged.connect(self._on_tab_changed)

    def _on_tab_changed(self, index: int) -> None:
        widget = self.widget(index)
        if widget is self.kv_view and self._geometry_pending is not None:
            self._read_geometry(self._geometry_pending)
        view = self.bandwidth_view
        if widget is view and self.bandwidth_bytes_s is None and view.measure.isEnabled():
            # The stored figure, or the copy benchmark (under a second) the first time.
            view.set_measuring(True)
            self.tasks.run(bandwidth.measure, self._on_bandwidth_measured)

    # ---- fed by the panel ----------------------------------------
    def set_model_info(self, info: ev.ModelLoaded) -> None:
        self.recorder.model_loaded(info.load_ms)
        self.model = info
        self._geometry_pending = info
        if self.currentWidget() is self.kv_view:
            self._read_geometry(info)

    def _read_geometry(self, info: ev.ModelLoaded) -> None:
        """The KV arithmetic needs the GGUF header: read on a worker."""
        self._geometry_pending = None
        kv_type = str(info.settings.get("kv_cache_type", "f16"))
        reported = info.kv_buffer_mib_reported
        self.tasks.run(
            lambda: _geometry_job(info.model_path, info.n_ctx, kv_type),
            lambda geometry: self.kv_view.set_geometry(geometry, reported),
            lambda _error: self.kv_view.set_geometry(None, reported),
        )

    def begin_live(self, started: object) -> None:
        if isinstance(started, ev.TurnStarted):
            self._request_id = started.request_id
            self.recorder.turn_started(started)

    def add_tokens(self, t_ns: Sequence[int]) -> None:
        self.recorder.tokens(self._request_id, list(t_ns))

    def end_live(self, metrics: TurnMetrics | None) -> None:
        if metrics is None:
            return
        trace = self.recorder.turn_finished(self._request_id, metrics)
        self._request_id = None
        self.show_trace(trace)

    # ---- drawing ----------------------------------------
    def show_trace(self, trace: TurnTrace) -> None:
        """Fill every view from one finished turn."""
        m = trace.metrics or TurnMetrics()
        self.last_trace = trace
        self.session_latency.add_turn(m.ttft_ms, trace.itl_ms)
        self.last_diagnosis = diagnose_trace(
            trace, self.model, self.recorder, self.bandwidth_bytes_s
        )
        self.diagnosis_view.set_diagnosis(self.last_diagnosis)
        self.timeline_view.set_timeline(build_timeline(trace, m))
        self.latency_view.set_data(trace.itl_ms, self.session_latency)
        fill = context_fill(
            trace.dropped_messages,
            m.prompt_tokens_evaluated,
            m.kv_cells_used,
            m.kv_cells_total,
            m.stop_reason,
        )
        self.kv_view.set_turn(m, fill)
        self._show_ceiling()
        self.turn_shown.emit(trace)

    def _show_ceiling(self) -> None:
        trace, model, speed = self.last_trace, self.model, self.bandwidth_bytes_s
        if trace is None or trace.metrics is None or model is None or not speed:
            return
        m = trace.metrics
        self.bandwidth_view.set_report(
            bandwidth.ceiling_report(
                speed, model.model_size_bytes, m.kv_bytes_used, m.decode_tok_s, m.prefill_tok_s
            )
        )

    def _on_bandwidth_measured(self, measured: bandwidth.BandwidthMeasurement | None) -> None:
        self.bandwidth_view.set_measuring(False)
        if measured is None:
            return  # never measured here: measured when the Bandwidth tab is first shown
        self.bandwidth_bytes_s = measured.bytes_per_s
        self._show_ceiling()

    def _on_bandwidth_remeasure_requested(self) -> None:
        self.bandwidth_view.set_measuring(True)
        self.tasks.run(lambda: bandwidth.measure(force=True), self._on_bandwidth_measured)

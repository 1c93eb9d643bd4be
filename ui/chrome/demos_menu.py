"""The Demos menu: run a scenario (app.scenarios) on the loaded model, then show its turn.

A scenario runs on its own engine (a second worker process on the same model
file and settings), on a background thread, so the conversation open in the
window is left as it was. When it ends, the internals panel's inside-a-turn
tabs show the scenario's focus turn (its timeline, latency, KV cache) and its
diagnosis, opened at the tab that explains the cause.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMenu, QStatusBar, QWidget

from app import diagnosis as dx
from app.scenarios import SCENARIOS, ScenarioResult, ScenarioRunner
from app.settings import RuntimeSettings
from ui.infra.tasks import BackgroundTasks, describe_error
from ui.internals.panel import InternalsPanel

# The inside-a-turn tab that best explains each cause (InsideTabs' order).
EXPLAINING_TAB = {
    dx.LONG_PROMPT: 1,  # Timeline
    dx.LONG_ANSWER: 1,
    dx.QUEUE_WAIT: 1,
    dx.COLD_START: 1,
    dx.FULL_CONTEXT: 3,  # KV cache
}


class DemosMenu(QObject):
    """Signals:
    demo_finished(object): a scenario ended; carries its ScenarioResult.
    demo_failed(str): a scenario could not run; carries a one-line reason.
    """

    demo_finished = Signal(object)
    demo_failed = Signal(str)

    def __init__(
        self,
        engine: Any,
        panel: InternalsPanel,
        status: QStatusBar,
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self.engine, self.panel, self.status = engine, panel, status
        self.tasks = BackgroundTasks(self, thread_name="glassbox-demo")
        self.runner: ScenarioRunner | None = None
        self.menu = QMenu("&Demos", window)
        self.menu.setToolTipsVisible(True)
        self.actions = {}
        for name, scenario in SCENARIOS.items():
            action = self.menu.addAction(scenario.title)
            action.setToolTip(f"{scenario.description} Then look at: {scenario.explains}.")
            action.triggered.connect(lambda _checked=False, n=name: self.run(n))
            self.actions[name] = action
        window.destroyed.connect(self.stop)

    def run(self, name: str) -> bool:
        """Start scenario `name` on the loaded model; False (and a message) when it cannot."""
        info = getattr(self.engine, "model_info", None)
        if info is None or info.backend == "remote":
            self._fail("Demos run on a local model: load one first")
            return False
        if self.runner is not None:
            self._fail("A demo is already running")
            return False
        runtime = RuntimeSettings.from_dict(info.settings) if info.settings else None
        self.runner = runner = ScenarioRunner(info.model_path, runtime)
        for action in self.actions.values():
            action.setEnabled(False)
        scenario = SCENARIOS[name]
        self.status.showMessage(f"Demo {scenario.title}: {scenario.description} Running…")
        self.tasks.run(lambda: runner.run(name), self._on_done, self._on_error)
        return True

    def stop(self) -> None:
        """Close the scenario's engine: a running scenario ends with an error, nothing waits."""
        if self.runner is not None:
            self.runner.close()

    def _finish(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None
        for action in self.actions.values():
            action.setEnabled(True)

    def _on_done(self, result: ScenarioResult) -> None:
        self._finish()
        focus = result.focus
        inside = self.panel.inside
        if result.model is not None:
            inside.model = result.model
        inside.show_trace(focus.trace)
        inside.diagnosis_view.set_diagnosis(focus.diagnosis)  # the scenario's own context
        inside.setCurrentIndex(EXPLAINING_TAB.get(result.scenario.cause, 0))
        self.status.showMessage(
            f"Demo {result.scenario.title}: {focus.diagnosis.label}. "
            f"See {result.scenario.explains}."
        )
        self.demo_finished.emit(result)

    def _on_error(self, error: BaseException) -> None:
        self._finish()
        self._fail(f"The demo stopped: {describe_error(error)}")

    def _fail(self, message: str) -> None:
        self.status.showMessage(message)
        self.demo_failed.emit(message)

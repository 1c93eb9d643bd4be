"""What the GUI remembers between runs: model path, runtime and sampling settings, theme,
the user's system-prompt presets.

A JSON file in data_dir() (GLASSBOX_HOME in tests), written atomically. A file
that is unreadable or holds invalid values falls back to defaults, field by
group, so one bad value never stops the app from starting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.atomic_file import write_json_atomic
from app.conversation_settings import PromptPreset, presets_from_json
from app.errors import GlassboxError
from app.paths import data_dir
from app.settings import RuntimeSettings, SamplingSettings, gui_runtime_defaults

FILE_NAME = "gui_settings.json"
# Version 2: thread counts are stored only when the user chose them. Files
# without a version hold the old default (one decode thread fewer than the
# cores) as if chosen; they load with threads unset, so the measured counts apply.
FORMAT_VERSION = 2
# prompt_presets came later without a version bump: files without it load with none.


@dataclass
class GuiSettings:
    model_path: str | None = None
    runtime: RuntimeSettings = field(default_factory=gui_runtime_defaults)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    theme: str = "system"
    # System-prompt presets the user saved (the built-in ones are not stored).
    prompt_presets: list[PromptPreset] = field(default_factory=list)

    @staticmethod
    def path() -> Path:
        return data_dir() / FILE_NAME

    @classmethod
    def load(cls) -> GuiSettings:
        try:
            raw: dict[str, Any] = json.loads(cls.path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        result = cls()
        if isinstance(raw.get("model_path"), str):
            result.model_path = raw["model_path"]
        if raw.get("theme") in ("system", "light", "dark"):
            result.theme = raw["theme"]
        try:
            stored = dict(raw.get("runtime") or {})
            if raw.get("version", 1) < FORMAT_VERSION:
                stored.pop("n_threads", None)
                stored.pop("n_threads_batch", None)
            saved = RuntimeSettings.from_dict(stored).to_dict()
            given = {k: v for k, v in saved.items() if k in stored}
            result.runtime = gui_runtime_defaults().with_changes(**given).validate()
        except (GlassboxError, TypeError):
            pass
        try:
            result.sampling = SamplingSettings.from_dict(raw.get("sampling") or {}).validate()
        except (GlassboxError, TypeError):
            pass
        result.prompt_presets = presets_from_json(raw.get("prompt_presets"))
        return result

    def save(self) -> None:
        data = {
            "version": FORMAT_VERSION,
            "model_path": self.model_path,
            "runtime": self.runtime.to_dict(),
            "sampling": self.sampling.to_dict(),
            "theme": self.theme,
            "prompt_presets": [preset.to_dict() for preset in self.prompt_presets],
        }
        write_json_atomic(self.path(), data)

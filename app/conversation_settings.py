"""Per-conversation sampling overrides and system-prompt presets.

The sampling defaults stay global (the GUI settings file, or the CLI's flags);
a conversation stores only the fields it overrides, as JSON in its row
(conversations.sampling_overrides, schema version 3). A turn is sent with the
defaults and that conversation's overrides applied over them, so changing a
default later still reaches every conversation that did not override it.

Stored overrides come from a file anyone can edit (or from a newer Glassbox):
each value is checked for its type and the result validated, and anything
wrong is a SettingsError naming the field, never a crash. Keys this build does
not know are ignored, so a newer build's extra fields do not break an older one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from app.errors import SettingsError
from app.settings import SamplingSettings
from app.storage.store import Store

# Every SamplingSettings field, in the dataclass's order (the dialog shows them so).
SAMPLING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SamplingSettings))

_FLOAT_FIELDS = ("temperature", "top_p", "min_p", "repeat_penalty")
_INT_FIELDS = ("top_k", "max_tokens")

# Longest preset name kept: it is shown in a dropdown.
PRESET_NAME_MAX = 60


class OverridesError(SettingsError):
    """A conversation's stored sampling overrides cannot be used."""


def _check_value(name: str, value: Any) -> Any:
    """The value as SamplingSettings holds it; SettingsError when its type is wrong.
    (JSON gives ints for 1.0 written as 1, and bool is an int in Python.)"""
    if name in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{name} must be a number, got {value!r}")
        return float(value)
    if name in _INT_FIELDS or name == "seed":
        if value is None and name == "seed":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{name} must be a whole number, got {value!r}")
        return value
    if name == "stop":
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise SettingsError(f"stop must be a list of strings, got {value!r}")
        if not all(isinstance(item, str) for item in value):
            raise SettingsError(f"stop must be a list of strings, got {value!r}")
        return tuple(value)
    raise SettingsError(f"{name} is not a sampling setting")


def clean_overrides(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The known fields of `raw`, each type-checked (SettingsError if one is wrong);
    unknown keys are dropped."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SettingsError(f"sampling overrides must be a JSON object, got {raw!r}")
    return {name: _check_value(name, raw[name]) for name in SAMPLING_FIELDS if name in raw}


def apply_overrides(
    defaults: SamplingSettings, overrides: Mapping[str, Any] | None
) -> SamplingSettings:
    """`defaults` with `overrides` applied, validated; SettingsError when the result is invalid."""
    return defaults.with_changes(**clean_overrides(overrides)).validate()


def effective_sampling(
    defaults: SamplingSettings,
    overrides: Mapping[str, Any] | None,
    conversation_id: int | None = None,
) -> SamplingSettings:
    """What a turn in the conversation is sent with. OverridesError (a one-line
    message that says where to fix it) when its stored overrides are unusable."""
    try:
        return apply_overrides(defaults, overrides)
    except SettingsError as exc:
        which = f"conversation {conversation_id}" if conversation_id is not None else "this chat"
        raise OverridesError(
            f"the sampling settings stored with {which} are invalid: {exc} "
            "(fix them in Conversation settings…)"
        ) from None


def conversation_sampling(
    store: Store, conversation_id: int, defaults: SamplingSettings
) -> SamplingSettings:
    """The effective sampling of a stored conversation (reads the store: not on the GUI thread)."""
    return effective_sampling(defaults, store.sampling_overrides(conversation_id), conversation_id)


def save_overrides(store: Store, conversation_id: int, overrides: Mapping[str, Any]) -> None:
    """Store `overrides` (only known fields; {} clears them) after checking that they
    make valid settings on their own, so a bad value is refused, not stored."""
    cleaned = clean_overrides(overrides)
    apply_overrides(SamplingSettings(), cleaned)
    store.set_sampling_overrides(conversation_id, to_json_overrides(cleaned) or None)


def to_json_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides as JSON holds them (stop as a list)."""
    return {k: list(v) if k == "stop" else v for k, v in overrides.items()}


def overrides_between(defaults: SamplingSettings, chosen: SamplingSettings) -> dict[str, Any]:
    """The fields where `chosen` differs from `defaults`."""
    return {
        name: getattr(chosen, name)
        for name in SAMPLING_FIELDS
        if getattr(chosen, name) != getattr(defaults, name)
    }


# ---- system-prompt presets -----------------------------------------------------------------


@dataclass(frozen=True)
class PromptPreset:
    """A named system prompt. Built-in ones ship with Glassbox and cannot be replaced."""

    name: str
    text: str
    builtin: bool = False

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "text": self.text}


BUILTIN_PRESETS: tuple[PromptPreset, ...] = (
    PromptPreset("Helpful assistant", "You are a helpful assistant.", builtin=True),
    PromptPreset(
        "Concise",
        "Answer in as few words as the question allows. No preamble, no repetition.",
        builtin=True,
    ),
    PromptPreset(
        "Teacher: explain step by step",
        "You are a patient teacher. Explain step by step, define each new term when it "
        "first appears, and end with a one-line summary.",
        builtin=True,
    ),
    PromptPreset(
        "Code reviewer",
        "You are a careful code reviewer. Point out bugs first, then unclear names and "
        "missing tests. Quote the line you mean and suggest a fix.",
        builtin=True,
    ),
)


def presets_from_json(raw: Any) -> list[PromptPreset]:
    """User presets from the settings file; entries not {name, text} strings are skipped."""
    if not isinstance(raw, list):
        return []
    result: list[PromptPreset] = []
    for entry in raw:
        if isinstance(entry, dict):
            name, text = entry.get("name"), entry.get("text")
            if isinstance(name, str) and isinstance(text, str) and name.strip():
                result.append(PromptPreset(name.strip()[:PRESET_NAME_MAX], text))
    return result


def all_presets(user: Iterable[PromptPreset]) -> list[PromptPreset]:
    """Built-in presets first, then the user's in the order saved."""
    return [*BUILTIN_PRESETS, *user]


def with_user_preset(user: Sequence[PromptPreset], name: str, text: str) -> list[PromptPreset]:
    """The user's presets with `name` saved as `text` (replacing one of the same name).
    SettingsError for an empty name, a built-in's name or an empty text."""
    name = name.strip()
    if not name:
        raise SettingsError("a preset needs a name")
    if len(name) > PRESET_NAME_MAX:
        raise SettingsError(f"a preset name is at most {PRESET_NAME_MAX} characters")
    if not text.strip():
        raise SettingsError("the system prompt is empty: nothing to save as a preset")
    if any(p.name.casefold() == name.casefold() for p in BUILTIN_PRESETS):
        raise SettingsError(f"“{name}” is a built-in preset; choose another name")
    kept = [p for p in user if p.name.casefold() != name.casefold()]
    return [*kept, PromptPreset(name, text)]

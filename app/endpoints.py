"""Remote endpoints: where an OpenAI-compatible server is, which model, where its key is.

An Endpoint names the API key's *source* (an environment variable, or the
system keyring through the optional `keyring` package), never the key: the
saved endpoints file holds URLs, model names and variable names only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.atomic_file import write_json_atomic
from app.errors import SettingsError
from app.paths import data_dir

KEY_SOURCES = ("none", "env", "keyring")
KEYRING_SERVICE = "glassbox"  # keyring entries: service "glassbox", user = the server's root URL
FILE_NAME = "endpoints.json"


def split_base_url(url: str) -> tuple[str, str]:
    """(root, api_base) for what a user types: "http://host:8080", ".../v1", ".../v1/".

    root is where llama.cpp's /slots and Prometheus /metrics live; api_base
    (root + "/v1") is where the OpenAI routes are.
    """
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"endpoint URL must look like http://host:port or https://host/v1, got {url!r}"
        )
    root = text.removesuffix("/v1")
    return root, root + "/v1"


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str = ""  # "" : the first model the server lists
    key_source: str = "none"  # one of KEY_SOURCES
    api_key_env: str = ""  # the variable's name, when key_source is "env"
    name: str = ""  # what the picker shows; the URL when empty

    def validate(self) -> Endpoint:
        split_base_url(self.base_url)
        if self.key_source not in KEY_SOURCES:
            raise SettingsError(
                f"key source must be one of {', '.join(KEY_SOURCES)}, got {self.key_source!r}"
            )
        if self.key_source == "env" and not self.api_key_env.strip():
            raise SettingsError("name the environment variable that holds the API key")
        return self

    @property
    def root(self) -> str:
        return split_base_url(self.base_url)[0]

    @property
    def api_base(self) -> str:
        return split_base_url(self.base_url)[1]

    @property
    def label(self) -> str:
        shown = self.name or self.root
        return f"{shown} ({self.model})" if self.model else shown

    def api_key(self) -> str | None:
        """The key from its source, read now (never stored by us); None for no key."""
        if self.key_source == "env":
            value = os.environ.get(self.api_key_env)
            if not value:
                raise SettingsError(
                    f"the API key variable {self.api_key_env} is not set in this environment"
                )
            return value
        if self.key_source == "keyring":
            return keyring_get(self.root)
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Endpoint:
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in known and v is not None})

    def with_changes(self, **changes: Any) -> Endpoint:
        return replace(self, **changes)


def _keyring() -> Any:
    try:
        import keyring  # noqa: PLC0415 - optional: only users who keep keys there need it
    except ImportError:
        raise SettingsError(
            "the system keyring needs the `keyring` package: pip install keyring"
        ) from None
    return keyring


def keyring_get(root: str) -> str | None:
    try:
        value = _keyring().get_password(KEYRING_SERVICE, root)
    except SettingsError:
        raise
    except Exception as exc:  # no backend, a locked store, D-Bus missing
        raise SettingsError(f"could not read the API key from the system keyring: {exc}") from None
    if not value:
        raise SettingsError(f"the system keyring holds no API key for {root}")
    return str(value)


def keyring_set(root: str, key: str) -> None:
    try:
        _keyring().set_password(KEYRING_SERVICE, root, key)
    except SettingsError:
        raise
    except Exception as exc:
        raise SettingsError(f"could not store the API key in the system keyring: {exc}") from None


def endpoints_path() -> Path:
    return data_dir() / FILE_NAME


def load_endpoints() -> list[Endpoint]:
    """Saved endpoints; an unreadable file or entry is skipped, never fatal."""
    try:
        raw = json.loads(endpoints_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    found: list[Endpoint] = []
    for entry in raw.get("endpoints", []) if isinstance(raw, dict) else []:
        try:
            found.append(Endpoint.from_dict(entry).validate())
        except (SettingsError, TypeError, AttributeError):
            continue
    return found


def save_endpoints(endpoints: list[Endpoint]) -> None:
    data = {"version": 1, "endpoints": [e.validate().to_dict() for e in endpoints]}
    write_json_atomic(endpoints_path(), data)

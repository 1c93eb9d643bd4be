"""Hugging Face Hub: search GGUF repositories, list their files, download and verify one.

Everything goes through huggingface_hub, so its cache (shared with other tools),
its token (gated repositories) and its endpoint (a mirror) apply. HF_ENDPOINT,
HF_HUB_OFFLINE and the cache location are read from the environment at call time
and passed explicitly, because huggingface_hub reads them once at import.

A quick TCP probe runs before each Hub operation: without it an unreachable Hub
costs huggingface_hub's ~23 s of retries before the "offline" message. Once
connected, its own retries (with Range resume) handle a dropped transfer.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.errors import GlassboxError, ModelFileError
from app.models.fit import format_bytes
from app.models.gguf_file import read_gguf_info
from app.models.library import hf_cache_dir

DISK_MARGIN_BYTES = 64 * 1024 * 1024  # free space kept beyond the file itself
PROBE_TIMEOUT_S = 5.0
HASH_CHUNK = 8 * 1024 * 1024
PREFERRED_QUANT = "Q4_K_M"  # picked when a repository has many files and none was named
KEPT_NOTE = "the file was already in the Hugging Face cache before this pull and was kept"

_QUANT_RE = re.compile(
    r"(?<![A-Z0-9])(I?Q\d(?:_[0-9A-Z]{1,2}){0,3}|TQ\d_\d|BF16|F16|F32|FP16|MXFP4)(?![A-Z0-9])"
)


class HubError(GlassboxError):
    """A Hub operation failed; the message says what and what to do."""


class HubOfflineError(HubError):
    """No network, the endpoint is unreachable, or HF_HUB_OFFLINE is set."""


class DownloadCancelledError(HubError):
    """The user cancelled; nothing partial was left behind."""


@dataclass(frozen=True)
class HubRepo:
    repo_id: str
    downloads: int | None = None
    likes: int | None = None
    gated: bool = False
    last_modified: str | None = None


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str
    size_bytes: int | None
    sha256: str | None  # the LFS object id
    quantization: str | None


@dataclass(frozen=True)
class DownloadProgress:
    filename: str
    phase: str  # "downloading" or "verifying"
    done_bytes: int
    total_bytes: int | None
    rate_bytes_s: float | None
    eta_s: float | None


ProgressCallback = Callable[[DownloadProgress], None]


def hub_endpoint() -> str:
    value = os.environ.get("HF_ENDPOINT")
    if not value:
        from huggingface_hub import constants  # noqa: PLC0415 - slow to import; only the Hub features need it

        value = constants.ENDPOINT
    return value.rstrip("/")


def is_offline() -> bool:
    """HF_HUB_OFFLINE as the environment says now.

    huggingface_hub reads it once, at import, into constants.HF_HUB_OFFLINE and
    its own requests check that copy; it is brought up to date here, so a
    process that imported huggingface_hub while offline can go online later.
    """
    from huggingface_hub import constants  # noqa: PLC0415 - slow to import; only the Hub features need it

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    offline = flag.upper() in {"1", "ON", "YES", "TRUE"}
    constants.HF_HUB_OFFLINE = offline
    return offline


def ensure_online() -> None:
    """Raise HubOfflineError fast when the Hub cannot be used."""
    endpoint, cached_ok = hub_endpoint(), "cached models still work"
    if is_offline():
        raise HubOfflineError(f"offline (HF_HUB_OFFLINE is set): Hub search is off; {cached_ok}")
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise HubOfflineError(
            f"offline: cannot reach the Hugging Face Hub at {endpoint} ({reason}); {cached_ok}"
        ) from None


def quantization_from_filename(filename: str) -> str | None:
    match = _QUANT_RE.search(Path(filename).name.upper())
    return match.group(1) if match else None


def _api() -> Any:
    from huggingface_hub import HfApi  # noqa: PLC0415 - slow to import; only the Hub features need it

    return HfApi(endpoint=hub_endpoint())


def _translate(exc: Exception, repo_id: str | None = None) -> HubError:
    """huggingface_hub and transport exceptions -> one-line HubErrors."""
    from huggingface_hub import errors  # noqa: PLC0415 - slow to import; only the Hub features need it

    endpoint = hub_endpoint()
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, errors.GatedRepoError):
        return HubError(
            f"{repo_id} is gated: accept its terms on the Hub, then log in (`hf auth login`)"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return HubError(f"no repository {repo_id} on {endpoint} (or it is private)")
    if isinstance(exc, errors.RevisionNotFoundError | errors.EntryNotFoundError):
        return HubError(f"{repo_id}: the file or revision was not found on {endpoint}")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubOfflineError("offline (HF_HUB_OFFLINE is set): cached models still work")
    cause = exc.__cause__ or exc
    name = type(cause).__name__
    if isinstance(exc, errors.LocalEntryNotFoundError) or name in (
        "ConnectError",
        "ConnectTimeout",
    ):
        return HubOfflineError(f"offline: cannot reach the Hugging Face Hub at {endpoint} ({name})")
    if isinstance(exc, errors.HfHubHTTPError):
        first_line = str(exc).splitlines()[0] if str(exc) else name
        return HubError(f"the Hub at {endpoint} answered with an error: {first_line}")
    return HubError(f"talking to the Hub at {endpoint} failed: {name}: {exc}".splitlines()[0])


def search_models(query: str, limit: int = 30) -> list[HubRepo]:
    """GGUF repositories matching `query`, most downloaded first."""
    ensure_online()
    try:
        found = _api().list_models(
            search=query or None, filter="gguf", sort="downloads", limit=limit
        )
        return [
            HubRepo(
                repo_id=m.id,
                downloads=m.downloads,
                likes=m.likes,
                gated=bool(m.gated),
                last_modified=m.last_modified.isoformat() if m.last_modified else None,
            )
            for m in found
        ]
    except Exception as exc:
        raise _translate(exc) from None


def list_gguf_files(repo_id: str, revision: str | None = None) -> list[HubFile]:
    """The repository's .gguf files with sizes, LFS hashes and quantization names."""
    ensure_online()
    try:
        tree = list(_api().list_repo_tree(repo_id, recursive=True, revision=revision))
    except Exception as exc:
        raise _translate(exc, repo_id) from None
    files = [
        HubFile(
            repo_id=repo_id,
            filename=entry.path,
            size_bytes=entry.lfs.size if entry.lfs else entry.size,
            sha256=entry.lfs.sha256 if entry.lfs else None,
            quantization=quantization_from_filename(entry.path),
        )
        for entry in tree
        if getattr(entry, "size", None) is not None and entry.path.lower().endswith(".gguf")
    ]
    if not files:
        raise HubError(f"{repo_id} has no GGUF files; look for a repository with GGUF in its name")
    return sorted(files, key=lambda f: f.filename)


def pick_file(files: list[HubFile], file_or_quant: str | None = None) -> HubFile:
    """Choose by exact filename or by quantization name (case-insensitive)."""
    repo = files[0].repo_id if files else "the repository"
    if file_or_quant:
        wanted = file_or_quant.lower()
        for f in files:
            if f.filename.lower() == wanted or Path(f.filename).name.lower() == wanted:
                return f
        matches = [f for f in files if (f.quantization or "").lower() == wanted]
    else:
        matches = files if len(files) == 1 else []
        matches = matches or [f for f in files if f.quantization == PREFERRED_QUANT]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(sorted({f.quantization or f.filename for f in files}))
    if not matches:
        what = f"no file or quantization {file_or_quant!r}" if file_or_quant else "several files"
        raise HubError(f"{repo} has {what}; choose one of: {choices}")
    names = ", ".join(f.filename for f in matches)
    raise HubError(f"{repo}: {file_or_quant!r} matches several files ({names}); name one")


def free_disk_bytes(folder: Path) -> int:
    for path in (folder, *folder.parents):
        if path.exists():
            return shutil.disk_usage(path).free
    return shutil.disk_usage(Path.cwd()).free


def check_disk_space(size_bytes: int | None, folder: Path) -> None:
    if size_bytes is None:
        return
    free = free_disk_bytes(folder)
    if free < size_bytes + DISK_MARGIN_BYTES:
        raise HubError(
            f"not enough free disk space: the file needs {format_bytes(size_bytes)}, "
            f"{format_bytes(free)} is free in {folder}"
        )


class _Meter:
    """Turns byte counts into DownloadProgress events with rate and time left."""

    def __init__(self, filename: str, callback: ProgressCallback | None, phase: str) -> None:
        self.filename, self.callback, self.phase = filename, callback, phase
        self.samples: list[tuple[float, int]] = []

    def report(self, done: int, total: int | None) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        self.samples = [*[s for s in self.samples if now - s[0] < 5.0][-50:], (now, done)]
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        rate = (d1 - d0) / (t1 - t0) if t1 > t0 and d1 >= d0 else None
        eta = (total - done) / rate if rate and total is not None else None
        self.callback(DownloadProgress(self.filename, self.phase, done, total, rate, eta))


def _progress_class(meter: _Meter, cancel: threading.Event | None) -> type:
    from tqdm import tqdm  # noqa: PLC0415 - comes with huggingface_hub; only a pull needs it

    class _HubProgress(tqdm):
        """huggingface_hub's progress bar hook: reports bytes and raises on cancel."""

        monitor_interval = 0  # no tqdm monitor thread: nothing is drawn, and it outlives us

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # no terminal bar: callers draw their own
            super().__init__(*args, **kwargs)
            self.done = int(kwargs.get("initial") or 0)
            self.expected = kwargs.get("total")
            meter.report(self.done, self.expected)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelledError("download cancelled; nothing was kept")
            self.done += int(n or 0)  # negative when a resume restarts from zero
            meter.report(self.done, self.expected)
            return None

    return _HubProgress


def _sha256(path: Path, meter: _Meter, cancel: threading.Event | None) -> str:
    digest, done = hashlib.sha256(), 0
    total = path.stat().st_size
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelledError("download cancelled; nothing was kept")
            digest.update(chunk)
            done += len(chunk)
            meter.report(done, total)
    return digest.hexdigest()


def _discard(pointer: Path) -> None:
    """Remove a downloaded file from the cache: the blob and the snapshot link to it."""
    blob = pointer.resolve()
    for path in (pointer, blob):
        try:
            path.unlink()
        except OSError:
            pass


def _repo_dir(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _cached_blobs(cache: Path, repo_id: str) -> set[Path]:
    """The repository's blobs in the cache now: files this download did not create."""
    try:
        return {p.resolve() for p in (_repo_dir(cache, repo_id) / "blobs").iterdir()}
    except OSError:
        return set()


def _forget_empty_repo(cache: Path, repo_id: str) -> None:
    """After a failed first download, drop the repo folder huggingface_hub started.

    Kept when any blob (or another download's .incomplete file) is in it.
    """
    repo_dir = _repo_dir(cache, repo_id)
    folder = repo_dir.name
    blobs = repo_dir / "blobs"
    if blobs.exists() and any(blobs.iterdir()):
        return
    if any(p.is_file() or p.is_symlink() for p in (repo_dir / "snapshots").rglob("*")):
        return
    shutil.rmtree(repo_dir, ignore_errors=True)
    shutil.rmtree(cache / ".locks" / folder, ignore_errors=True)


def _is_interruption(exc: Exception) -> bool:
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return True  # huggingface_hub: fewer bytes than announced
    return type(exc).__name__ in ("RemoteProtocolError", "ReadError", "ReadTimeout", "WriteError")


def download_gguf(
    file: HubFile,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Download one GGUF into the HF cache, verify its SHA-256 and header; return its path.

    Raises DownloadCancelledError (nothing left behind), HubOfflineError, or HubError
    (interrupted, checksum mismatch or not a GGUF: the file is deleted). A file that
    was already in the cache before this call (the user's, or another tool's) is
    verified too, but never deleted: on cancel or failure it stays where it was.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache  # noqa: PLC0415 - slow to import; only the Hub features need it

    cache = cache_dir or hf_cache_dir()
    if is_offline():
        cached = try_to_load_from_cache(file.repo_id, file.filename, cache_dir=cache)
        if isinstance(cached, str):
            return Path(cached)
    ensure_online()
    check_disk_space(file.size_bytes, cache)
    meter = _Meter(file.filename, on_progress, "downloading")
    # hf_hub_download returns a file already in the cache without fetching it;
    # what to delete on cancel or failure depends on whether we fetched it.
    had_blobs = _cached_blobs(cache, file.repo_id)
    try:
        pointer = Path(
            hf_hub_download(
                file.repo_id,
                file.filename,
                cache_dir=cache,
                endpoint=hub_endpoint(),
                tqdm_class=_progress_class(meter, cancel),
            )
        )
    except DownloadCancelledError:
        _forget_empty_repo(cache, file.repo_id)
        raise
    except Exception as exc:
        _forget_empty_repo(cache, file.repo_id)
        if _is_interruption(exc):
            raise HubError(
                f"the download of {file.filename} was interrupted and could not be resumed; "
                "nothing was kept, try again"
            ) from None
        raise _translate(exc, file.repo_id) from None
    if pointer.resolve() in had_blobs:
        try:
            _verify(pointer, file, cancel, on_progress, kept=KEPT_NOTE)
        except DownloadCancelledError:
            raise DownloadCancelledError(f"download cancelled; {KEPT_NOTE}") from None
        return pointer
    try:
        _verify(pointer, file, cancel, on_progress)
    except BaseException:
        _discard(pointer)
        _forget_empty_repo(cache, file.repo_id)
        raise
    return pointer


def _verify(
    pointer: Path,
    file: HubFile,
    cancel: threading.Event | None,
    on_progress: ProgressCallback | None,
    kept: str | None = None,
) -> None:
    """Check the SHA-256 and the GGUF header; kept: why a bad file is not deleted."""
    if file.sha256:
        actual = _sha256(pointer, _Meter(file.filename, on_progress, "verifying"), cancel)
        if actual != file.sha256.lower():
            raise HubError(
                f"{file.filename} failed its checksum (expected SHA-256 {file.sha256[:12]}..., "
                f"got {actual[:12]}...); {kept or 'the file was deleted'}"
            )
    try:
        read_gguf_info(pointer)
    except ModelFileError as exc:
        raise HubError(
            f"the downloaded file is not a usable GGUF ({exc}); {kept or 'it was deleted'}"
        ) from None

"""Deleting a model file from the library, and saying first what would be deleted.

Glassbox owns two places: its models folder and the Hugging Face cache it downloads
into. A file there is deleted (for the cache: the snapshot link and the blob it points
to). A file anywhere else (a folder the user added) is the user's: the plan says so,
and the caller must ask in those words before deleting. The bundled model belongs to
the installed package and is never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.errors import GlassboxError
from app.models.library import SOURCE_BUNDLED, ModelEntry, hf_cache_dir
from app.paths import models_dir


@dataclass(frozen=True)
class DeletePlan:
    """What deleting one library entry removes. owned: inside our models folder or the
    HF cache; otherwise the confirmation must say the file is the user's own."""

    entry_path: Path
    paths: list[Path] = field(default_factory=list)
    owned: bool = False
    place: str = ""  # "the Glassbox models folder", "the Hugging Face cache", or the folder

    def question(self) -> str:
        """The confirmation text, naming the file and where it is."""
        if self.owned:
            return f"Delete {self.entry_path.name} from {self.place}?\n\n{self.entry_path}"
        return (
            f"{self.entry_path} is outside the Glassbox models folder and the Hugging Face "
            f"cache: it is your own file in {self.place}. Delete it from disk anyway?"
        )


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def plan_delete(entry: ModelEntry) -> DeletePlan:
    """What deleting `entry` would remove (reads the disk: call it off the GUI thread)."""
    if entry.source == SOURCE_BUNDLED:
        raise GlassboxError(
            f"{entry.path.name} is the bundled model (part of the installed package); "
            "it cannot be deleted from here"
        )
    path = entry.path.absolute()
    ours = models_dir().resolve()
    cache = hf_cache_dir().resolve()
    real = path.resolve()
    if _inside(path.parent.resolve(), cache) and _inside(real, cache):
        paths = [path, real] if path.is_symlink() else [path]
        return DeletePlan(path, paths, owned=True, place="the Hugging Face cache")
    if _inside(real, ours) and _inside(path.parent.resolve(), ours):
        return DeletePlan(path, [path], owned=True, place="the Glassbox models folder")
    return DeletePlan(path, [path], owned=False, place=str(path.parent))


def delete(plan: DeletePlan) -> list[Path]:
    """Remove the plan's files; returns what was removed. A file already gone is skipped."""
    removed = []
    for path in plan.paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise GlassboxError(f"cannot delete {path}: {exc.strerror or exc}") from None
        removed.append(path)
    return removed

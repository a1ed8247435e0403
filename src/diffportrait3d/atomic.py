"""Write results atomically per file, and never remove what we did not write.

A crash or Ctrl-C leaves every file either as it was or complete: each file is written under a
temporary name in its own folder and renamed onto its final name. Writing into an existing folder
keeps every file the writer does not produce (a user's notes, photos, older results).
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError

PARTIAL = ".dp3d-partial-"  # staging folders of atomic_folder; a killed run may leave one behind


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary file path beside `final`; rename it onto `final` only if the block succeeds.

    The temp name keeps the extension (writers pick formats from it). For folders use atomic_folder.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{suffix}", dir=final.parent)
    os.close(fd)
    os.unlink(tmp)  # writers create the file themselves, with the usual permissions
    tmp = Path(tmp)
    try:
        yield tmp
        if final.is_dir():
            raise UserError(f"cannot write {final}: a folder of that name is in the way; move it or choose another name")
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(final: str | os.PathLike):
    """Yield an empty staging folder; when the block succeeds, move each file it holds to the same
    place under `final`, one atomic rename per file.

    Files in `final` that the block did not write are kept; files it wrote replace their namesakes.
    The staging folder lives inside `final` (same file system, so renames work even when `final` is
    a mount point) and is removed whatever happens; so is `final` if this call created it and it
    stayed empty.
    """
    final = Path(final)
    created = not final.exists()
    final.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=PARTIAL, dir=final))
    try:
        yield tmp
        files = sorted(p for p in tmp.rglob("*") if not p.is_dir())
        for src in files:  # find every clash before moving anything
            rel = src.relative_to(tmp)
            blockers = [final / rel] if (final / rel).is_dir() else []
            blockers += [final / p for p in list(rel.parents)[:-1] if (final / p).exists() and not (final / p).is_dir()]
            if blockers:
                raise UserError(f"cannot write {final / rel}: {blockers[0]} is in the way; move it or choose another output")
        for src in files:
            dest = final / src.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                final.rmdir()  # only succeeds when empty, i.e. nothing was written


def remove_partials(folder: Path) -> None:
    """Remove staging folders left in `folder`'s subfolders by a killed run (ours by name)."""
    for stale in folder.glob(f"*/{PARTIAL}*"):
        shutil.rmtree(stale, ignore_errors=True)

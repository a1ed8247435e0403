"""Checks every command runs before it loads a model or takes a step, so that a bad output path or
number fails in a second instead of after the work. Plain functions raising UserError, usable by any
caller; `arg` names the option in the message (the CLI prints it as one line and exits 2)."""

import math
import os
import shutil
import tempfile
from pathlib import Path

from .errors import UserError


def check_output_folder(path: str | os.PathLike, arg: str = "-o", need_bytes: int = 0) -> Path:
    """A folder we may write into: existing and writable, or creatable. Its other files are kept."""
    path = _named(path, arg, "views")
    if path.exists() and not path.is_dir():
        raise UserError(f"{arg} {path}: a file of that name exists; give a folder name (or move the file)")
    _check_writable(path if path.is_dir() else _existing_ancestor(path, arg), arg, path)
    check_free_space(path, need_bytes, arg)
    return path


def check_output_file(path: str | os.PathLike, arg: str = "-o", need_bytes: int = 0) -> Path:
    """A file we may (re)write: not a folder, not read-only, its folder writable or creatable."""
    path = _named(path, arg, "out.mp4")
    if path.is_dir():
        raise UserError(f"{arg} {path}: that is a folder; give a file name such as {path / 'out.mp4'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{arg} {path}: the file is read-only; choose another name or make it writable")
    folder = path.parent if path.parent.is_dir() else _existing_ancestor(path.parent, arg)
    _check_writable(folder, arg, path)
    check_free_space(path, need_bytes, arg)
    return path


def check_free_space(path: Path, need_bytes: int, arg: str = "-o") -> None:
    if need_bytes <= 0:
        return
    free = shutil.disk_usage(path if path.is_dir() else _existing_ancestor(path, arg)).free
    if free < need_bytes:
        raise UserError(f"{arg} {path}: needs about {_mb(need_bytes)} but only {_mb(free)} is free there; "
                        "free some space or choose another location")


def check_range(arg: str, value, lo=None, hi=None, integer: bool = False) -> None:
    if not in_range(value, lo, hi, integer):
        raise UserError(f"{arg} {value}: {describe_range(lo, hi, integer)}")


def in_range(value, lo=None, hi=None, integer: bool = False) -> bool:
    """`lo <= value <= hi` (either bound optional), finite, and a whole number when asked."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return (not integer or float(value).is_integer()) and (lo is None or value >= lo) and (hi is None or value <= hi)


def describe_range(lo=None, hi=None, integer: bool = False) -> str:
    kind = "a whole number" if integer else "a number"
    if lo is not None and hi is not None:
        return f"give {kind} from {lo} to {hi}"
    return f"give {kind} >= {lo}" if lo is not None else f"give {kind} <= {hi}"


def _named(path, arg: str, example: str) -> Path:
    path = Path(path).expanduser()
    if path.name in ("", ".", ".."):
        raise UserError(f"{arg} {path}: name the output itself (e.g. {arg} {path / example}), not the folder it goes in")
    return path


def _existing_ancestor(path: Path, arg: str) -> Path:
    for p in path.absolute().parents:
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{arg} {path}: {p} is a file, not a folder; choose another location")
            return p
    raise UserError(f"{arg} {path}: no part of this path exists")


def _check_writable(folder: Path, arg: str, path: Path) -> None:
    """Try it: permission bits do not tell for root, read-only mounts, immutable folders or /sys."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".dp3d-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{arg} {path}: cannot write in {folder} ({e.strerror}); choose a writable location") from None


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.1f} GiB"

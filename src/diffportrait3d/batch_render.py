"""Many reference photos, one output each, split across the processes of `accelerate launch`.

The per-photo work is one function (`render_photo(photo, output)`); this module only lists the
photos, gives each process its share (accelerate's `split_between_processes`), skips photos whose
output already exists (outputs are written atomically, so an existing one is complete), and
gathers what every process did into one summary.
"""

import json
import logging
from pathlib import Path
from typing import Callable

from .errors import UserError
from .media import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)
SUMMARY = "render_batch.json"


def list_photos(source: str | Path) -> list[Path]:
    """A folder's images (sorted), or a text file with one image path per line (relative to the file;
    blank lines and # comments skipped)."""
    source = Path(source)
    if source.is_dir():
        photos = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif source.is_file():
        lines = [ln.strip() for ln in source.read_text().splitlines()]
        photos = [(source.parent / ln) for ln in lines if ln and not ln.startswith("#")]
        missing = [str(p) for p in photos if not p.is_file()]
        if missing:
            raise UserError(f"{source}: {len(missing)} listed photos not found, e.g. {missing[0]}; fix the list")
    else:
        raise UserError(f"{source}: not found; pass a folder of photos or a text file listing them")
    if not photos:
        raise UserError(f"{source}: no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return photos


def outputs_for(photos: list[Path], out_dir: Path, fmt: str) -> list[Path]:
    """OUT/<photo name>.<fmt>, or a folder OUT/<photo name>/ for png; names must not collide."""
    outs = [out_dir / (p.stem if fmt == "png" else f"{p.stem}.{fmt}") for p in photos]
    seen = {}
    for p, o in zip(photos, outs):
        if o in seen:
            raise UserError(f"{seen[o]} and {p} would both write {o}; rename one of them")
        seen[o] = p
    return outs


def is_done(output: Path) -> bool:
    return (output / "contact_sheet.png").is_file() if output.suffix == "" else output.is_file()


def process_state():
    """accelerate's view of the processes. cpu=True where there is no GPU: without it, PartialState
    does not see the processes of `accelerate launch` (or torchrun) on a CPU-only machine and every
    process renders every photo."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def render_batch(photos: list[Path], outputs: list[Path], render_photo: Callable[[Path, Path], None],
                 progress: bool = True) -> list[dict]:
    """Run `render_photo` for this process's share of the photos not done yet; every process returns
    the records of all processes: {"photo", "output", "status": rendered|skipped|failed, "process", "error"?}."""
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    state = process_state()
    records = []
    with state.split_between_processes(list(zip(photos, outputs))) as mine:
        for photo, out in tqdm(mine, desc=f"photos (process {state.process_index})", disable=not progress):
            rec = {"photo": str(photo), "output": str(out), "process": state.process_index}
            if is_done(out):
                records.append({**rec, "status": "skipped"})
                continue
            try:
                render_photo(photo, out)
                records.append({**rec, "status": "rendered"})
            except (UserError, OSError, ValueError) as e:  # one bad photo must not stop the others
                logger.warning("%s: %s", photo, e)
                records.append({**rec, "status": "failed", "error": str(e)})
    return gather_object(records) if state.num_processes > 1 else records


def write_summary(records: list[dict], out_dir: Path) -> str:
    """OUT/render_batch.json (atomic) and a one-line summary."""
    from .atomic import atomic_path

    with atomic_path(out_dir / SUMMARY) as tmp:
        Path(tmp).write_text(json.dumps(records, indent=1))
    count = {s: sum(r["status"] == s for r in records) for s in ("rendered", "skipped", "failed")}
    procs = len({r["process"] for r in records})
    return (f"{len(records)} photos: {count['rendered']} rendered, {count['skipped']} skipped (already done), "
            f"{count['failed']} failed, over {procs} process{'es' if procs != 1 else ''}; outputs and {SUMMARY} in {out_dir}")

"""The files a render writes: a video, or a folder with any of FILES; each written atomically.

A folder's views come with their cameras when they are known (built-in renderer, a camera path, a
condition folder with labels): an EG3D `dataset.json` beside the PNGs, so the folder is a posed
multi-view set that `dp3d lift` and the dataset reader take as it is.
"""

import zipfile
from pathlib import Path

from ..errors import UserError

# names a folder output may receive; "views" stands for view_000.png, view_001.png, ...
FILES = ("views", "contact_sheet.png", "turntable.mp4", "turntable.gif", "views.zip")
FOLDER_FILES = ("views", "contact_sheet.png")  # `dp3d render -o FOLDER`


def is_video(output) -> bool:
    from ..media import VIDEO_SUFFIXES

    return Path(output).suffix.lower() in VIDEO_SUFFIXES


def check_outputs(output, files=None) -> Path:
    from ..preflight import check_output_file, check_output_folder

    if is_video(output):
        return check_output_file(output)
    unknown = [f for f in files or () if f not in FILES]
    if unknown:
        raise ValueError(f"unknown output files {unknown}; known: {FILES}")
    out = check_output_folder(output)
    for name in files or FOLDER_FILES:
        if name != "views":
            check_output_file(out / name)
    if "views" in (files or FOLDER_FILES):
        _check_dataset_json(out)
    return out


def _check_dataset_json(out: Path) -> None:
    """The views' dataset.json may replace only one that a render wrote (never a user's dataset)."""
    from ..data.eg3d_index import DATASET_JSON, is_render_dataset_json

    meta = out / DATASET_JSON
    if meta.is_dir() or (meta.exists() and not is_render_dataset_json(meta)):
        raise UserError(f"-o {out}: holds a {DATASET_JSON} that lists other images; the views' cameras would replace "
                        "it; choose another output folder")


def contact_sheet(result, truth=None):
    """Rows: references | conditions (the cameras) | generated views [| ground truth], at the views' size."""
    from ..media import grid

    size = result.views[0].size
    rows = [result.references, result.conditions, result.views] + ([truth] if truth else [])
    return grid([[im.resize(size) for im in row] for row in rows])


def write_outputs(result, output, files=None, fps: int = 8, truth=None) -> dict[str, Path]:
    """Write `result` to a video file or into a folder; returns {name: path} of what was written."""
    from ..atomic import atomic_path
    from ..media import save_image, save_video

    output = Path(output)
    if is_video(output):
        return {output.name: save_video(result.views, output, fps=fps)}
    written = {}
    for name in files or FOLDER_FILES:
        path = output / name
        if name == "views":
            written.update(_write_views(result, output))
            continue
        if name == "contact_sheet.png":
            save_image(contact_sheet(result, truth), path)
        elif name in ("turntable.mp4", "turntable.gif"):
            save_video(result.views, path, fps=fps)
        elif name == "views.zip":
            with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
                for i, im in enumerate(result.views):
                    with z.open(f"view_{i:03d}.png", "w") as f:
                        im.save(f, format="PNG")
        else:
            raise UserError(f"unknown output file {name!r}; known: {', '.join(FILES)}")
        written[name] = path
    return written


def _write_views(result, output: Path) -> dict[str, Path]:
    """view_NNN.png and, when the cameras are known, dataset.json, moved into `output` together."""
    from ..atomic import atomic_folder
    from ..data.eg3d_index import DATASET_JSON, dataset_json, is_render_dataset_json

    _check_dataset_json(output)  # again: the folder may have changed since the check before the model ran
    names = [f"view_{i:03d}.png" for i in range(len(result.views))]
    with atomic_folder(output) as tmp:
        for name, im in zip(names, result.views):
            im.save(tmp / name)
        if result.labels is not None:
            (tmp / DATASET_JSON).write_text(dataset_json(names, result.labels))
            names.append(DATASET_JSON)
    if result.labels is None and is_render_dataset_json(output / DATASET_JSON):
        (output / DATASET_JSON).unlink()  # an earlier render's cameras; they do not belong to these views
    return {name: output / name for name in names}

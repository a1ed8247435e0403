"""The files a render writes: a video, or a folder with any of FILES; each written atomically."""

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
    return out


def contact_sheet(result, truth=None):
    """Rows: references | conditions (the cameras) | generated views [| ground truth], at the views' size."""
    from ..media import grid

    size = result.views[0].size
    rows = [result.references, result.conditions, result.views] + ([truth] if truth else [])
    return grid([[im.resize(size) for im in row] for row in rows])


def write_outputs(result, output, files=None, fps: int = 8, truth=None) -> dict[str, Path]:
    """Write `result` to a video file or into a folder; returns {name: path} of what was written."""
    from ..atomic import atomic_folder, atomic_path
    from ..media import save_image, save_video

    output = Path(output)
    if is_video(output):
        return {output.name: save_video(result.views, output, fps=fps)}
    written = {}
    for name in files or FOLDER_FILES:
        path = output / name
        if name == "views":
            with atomic_folder(output) as tmp:
                for i, im in enumerate(result.views):
                    im.save(tmp / f"view_{i:03d}.png")
            written.update({f"view_{i:03d}.png": output / f"view_{i:03d}.png" for i in range(len(result.views))})
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

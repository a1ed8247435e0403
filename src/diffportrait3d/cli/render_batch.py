"""`dp3d render-batch`: `dp3d render` for many photos (one person each), one output per photo,
split across processes under `accelerate launch`, resumable."""

from pathlib import Path

from ..errors import UserError
from .common import (add_camera_args, add_crop_arg, add_fps_arg, add_model_args, add_reference_camera_arg, add_sampling_args,
                     note_if_mini_on_photo, settings_from_args)


def add_parser(sub, name):
    p = sub.add_parser(name, help="render many portraits, one output each (several processes with accelerate launch)",
                       description="Render every photo of a folder (or of a text file listing one path per line) along the "
                                   "same cameras as `dp3d render`, writing OUT/<photo name>.mp4 (or .gif, or a folder "
                                   "OUT/<photo name>/ for --format png). Photos whose output exists are skipped, so a "
                                   "stopped run continues where it was. `accelerate launch -m diffportrait3d.cli.main "
                                   "render-batch ...` splits the photos across processes (one per GPU; on CPUs use torchrun "
                                   "--nproc_per_node N -m diffportrait3d.cli.main render-batch ...). A summary is "
                                   "printed and written to OUT/render_batch.json.")
    p.add_argument("photos", help="a folder of reference photos or a text file listing them")
    add_model_args(p)
    p.add_argument("--conditions", default="render", help="render (built-in renderer, default), a folder of images, or a video")
    add_camera_args(p)
    p.add_argument("--proxy", default="auto", choices=["auto", "none"], help="3D-aware initial noise: auto or none (Gaussian)")
    add_crop_arg(p)
    add_reference_camera_arg(p)
    p.add_argument("-o", "--output", required=True, help="output folder (other files in it are kept)")
    p.add_argument("--format", default="mp4", choices=["mp4", "gif", "png"], help="per photo: a video, or a folder of PNGs")
    add_fps_arg(p)
    add_sampling_args(p)
    p.set_defaults(func=run)


def run(args):
    from ..app import load_model, render
    from ..app.render import check, mode_steps
    from ..batch_render import list_photos, outputs_for, process_state, render_batch, write_summary
    from ..preflight import check_output_folder

    state = process_state()
    # under accelerate launch each process takes its own GPU
    settings = settings_from_args(args, **({"device": str(state.device)} if args.device == "auto" else {}))
    check(settings)
    out_dir = check_output_folder(args.output)
    photos = list_photos(args.photos)
    outputs = outputs_for(photos, out_dir, args.format)
    if state.is_main_process:
        note_if_mini_on_photo(args.model, photos)
    pipe = load_model(settings)
    pipe.set_progress_bar_config(disable=True)
    mode_steps(settings, pipe)  # turbo on a hub id without a student (check() read a folder's): one line, not one per photo

    def render_photo(photo: Path, output: Path):
        render(settings, [photo], output, pipe=pipe)

    records = render_batch(photos, outputs, render_photo, progress=state.is_main_process)
    if state.is_main_process:
        print(write_summary(records, out_dir))
        failed = [r for r in records if r["status"] == "failed"]
        if failed:
            raise UserError(f"{len(failed)} photos failed, e.g. {failed[0]['photo']}: {failed[0]['error']}; fix or remove them "
                            "and run again (done photos are skipped)")

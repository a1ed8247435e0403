"""Save docs/renderer_contact_sheet.png: procedural heads from many cameras, to eyeball the renderer.

Rows 1-6: six identities at yaw -90, -60, -30, 0, 30, 60, 90 and 180 (back), pitch 0.
Rows 7-8: two identities at pitch +25 (camera above) and -25 (camera below), same yaws.
Row 9: one identity with expressions: neutral, mouth open, smile, brows raised, eyes closed,
frown, a mix, and a different light.

    python scripts/renderer_contact_sheet.py [--res 128] [--out docs/renderer_contact_sheet.png]
"""

import argparse
from pathlib import Path

import torch

from diffportrait3d.cameras import camera_label
from diffportrait3d.head import Expression, Identity, build_scene, render_scene
from diffportrait3d.media import grid, save_image

YAWS = [-90, -60, -30, 0, 30, 60, 90, 180]
SEEDS = [0, 9, 13, 18, 21, 28]
EXPRESSIONS = [Expression(), Expression(mouth_open=0.9), Expression(smile=1.0), Expression(brows=1.0),
               Expression(eyes_closed=1.0), Expression(brows=-0.5, smile=-0.4),
               Expression(mouth_open=0.4, smile=0.6, gaze_yaw=0.3), Expression()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "renderer_contact_sheet.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in SEEDS:
        scene = build_scene(Identity.sample(seed))
        rows.append([render_scene(scene, camera_label(y, 0), args.res).pil() for y in YAWS])
    for seed, pitch in [(20, 25), (7, -25)]:
        scene = build_scene(Identity.sample(seed))
        rows.append([render_scene(scene, camera_label(y, pitch), args.res).pil() for y in YAWS])
    idt = Identity.sample(12)
    row = []
    for k, ex in enumerate(EXPRESSIONS):
        light = (-1.0, 0.2) if k == len(EXPRESSIONS) - 1 else None
        row.append(render_scene(build_scene(idt, ex), camera_label(-20, 0), args.res, light=light).pil())
    rows.append(row)
    save_image(grid(rows), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

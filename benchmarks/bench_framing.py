"""Framing of the procedural head at EG3D cameras, measured with dlib as on EG3D's own renders.

Targets (issue 13, dlib on EG3D renders at yaw 0): inter-ocular distance 0.233 of the image
width, dlib face box 0.63 of the width; and dlib finds the face in >= 15 of 16 views of a
+-40 degree orbit. Prints the measured numbers, their ratio to the target, and the HEAD_SCALE
that would put the mean inter-ocular distance on target (framing scales linearly with it).

    python benchmarks/bench_framing.py [--identities 6] [--res 256]
"""

import argparse
import time

import numpy as np
import torch

from diffportrait3d.cameras import camera_label
from diffportrait3d.faces.dlib_models import dlib_faces
from diffportrait3d.head import Expression, Identity, build_scene, render_scene
from diffportrait3d.head.scene import HEAD_SCALE

EG3D_IOD, EG3D_BOX = 0.233, 0.63


def frontal_framing(seeds, res, faces):
    """[(inter-ocular / width, dlib box / width)] at yaw 0, pitch 0, neutral expression."""
    out = []
    for seed in seeds:
        img = render_scene(build_scene(Identity.sample(seed), Expression()), camera_label(0, 0), res).image
        rect, lm = faces.detect(img), faces.landmarks(img)
        if rect is None or lm is None:
            out.append((np.nan, np.nan))
            continue
        out.append((np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)) / res, rect.width() / res))
    return np.array(out)


def orbit_detections(seed, res, faces, views=16):
    """(HOG detections, HOG-or-CNN detections) on a -40..40 yaw orbit."""
    scene = build_scene(Identity.sample(seed), Expression())
    hog = cnn = 0
    for yaw in np.linspace(-40, 40, views):
        img = render_scene(scene, camera_label(float(yaw), 0), res).image
        hog += faces.detect(img) is not None
        cnn += faces.detect(img, cnn=True) is not None
    return hog, cnn


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=6)
    parser.add_argument("--res", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faces = dlib_faces()
    t = time.time()
    f = frontal_framing(range(args.identities), args.res, faces)
    iod, box = np.nanmean(f, 0)
    print(f"HEAD_SCALE {HEAD_SCALE}, {args.res} px, {args.identities} identities at yaw 0 "
          f"(dlib found {int(np.isfinite(f[:, 0]).sum())}):")
    print(f"  inter-ocular distance {iod:.3f} of the width (per identity {np.round(f[:, 0], 3)}), "
          f"target {EG3D_IOD}: ratio {iod / EG3D_IOD:.3f}")
    print(f"  dlib face box         {box:.3f} of the width (per identity {np.round(f[:, 1], 3)}), "
          f"target {EG3D_BOX}: ratio {box / EG3D_BOX:.3f}")
    print(f"  HEAD_SCALE for the inter-ocular target: {HEAD_SCALE * EG3D_IOD / iod:.3f}; "
          f"for the face-box target: {HEAD_SCALE * EG3D_BOX / box:.3f}")
    for seed in range(min(3, args.identities)):
        hog, cnn = orbit_detections(seed, args.res, faces)
        print(f"  identity {seed}: dlib finds the face in {hog}/16 orbit views (HOG), {cnn}/16 (HOG, then CNN)")
    print(f"({time.time() - t:.0f} s)")


if __name__ == "__main__":
    main()

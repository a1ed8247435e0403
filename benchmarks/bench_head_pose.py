"""Head-pose errors of faces.pose.head_pose against the old single-start solvePnP (the baseline).

Two test sets with known pose:
- renders: procedural heads (neutral, open mouth, smile) at known EG3D cameras, 256 px, EG3D
  focal; the truth is the pose the camera label implies (faces.pose.pose_of_label);
- photos: scikit-image's astronaut and matplotlib's Grace Hopper, mirrored (yaw and roll must
  change sign, pitch stay) and rotated in-plane by +-10, 20, 30 degrees (roll must follow,
  pitch and yaw stay); focal = image width.
Prints mean and worst absolute error of pitch, yaw, roll per set and method.

    python benchmarks/bench_head_pose.py [--identities 2]
"""

import argparse
import time

import cv2
import numpy as np
import torch
from PIL import Image

from diffportrait3d.cameras import FOCAL, camera_label
from diffportrait3d.faces.dlib_models import dlib_faces
from diffportrait3d.faces.pose import LANDMARK_IDS, MODEL_POINTS, camera_matrix, euler_from_matrix, head_pose, pose_of_label
from diffportrait3d.head import Expression, Identity, build_scene, render_scene

CAMERAS = [(0, 0), (-30, 5), (25, -10), (40, 10), (-15, -15), (10, 15)]
EXPRESSIONS = {"neutral": Expression(), "open mouth": Expression(mouth_open=1.0),
               "smile": Expression(smile=1.0, mouth_open=0.3)}
ROTATIONS = [-30, -20, -10, 10, 20, 30]


def baseline_pose(lm, width, height, focal=None):
    """The estimator before issue 13: one solvePnP from a frontal start, rigid model."""
    k = camera_matrix(width, height, focal)
    pts = np.asarray(lm, np.float64)[LANDMARK_IDS]
    tvec0 = np.array([[0.0], [0.0], [k[0, 0] * 15.0 / max(np.ptp(pts[:, 0]), 1.0)]])
    _, rvec, _ = cv2.solvePnP(MODEL_POINTS, pts, k, None, np.zeros((3, 1)), tvec0, True, cv2.SOLVEPNP_ITERATIVE)
    return euler_from_matrix(cv2.Rodrigues(rvec)[0])


METHODS = {"baseline (1 start, rigid)": baseline_pose, "head_pose (multi-start, expressive)": head_pose}


def render_set(identities: int):
    """[(name, image, truth pose)] of renders dlib finds a face in, and the number rendered."""
    out, n = [], 0
    for seed in range(1, identities + 1):
        for ename, ex in EXPRESSIONS.items():
            scene = build_scene(Identity.sample(seed), ex)
            for yaw, pitch in CAMERAS:
                label = camera_label(yaw, pitch)
                out.append((f"id{seed} {ename} yaw {yaw} pitch {pitch}", render_scene(scene, label, 256).image, pose_of_label(label)))
                n += 1
    return out


def report(name, errors):
    e = np.abs(np.array(errors))
    worst = np.unravel_index(np.argmax(e), e.shape)
    print(f"  {name:38s} mean |err| pitch {e[:, 0].mean():5.1f} yaw {e[:, 1].mean():5.1f} roll {e[:, 2].mean():5.1f}"
          f" | worst pitch {e[:, 0].max():5.1f} yaw {e[:, 1].max():5.1f} roll {e[:, 2].max():5.1f} (n={len(e)})")
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faces = dlib_faces()
    t = time.time()
    renders = render_set(args.identities)
    found = [(n, im, tr, faces.landmarks(im, cnn=True)) for n, im, tr in renders]
    found = [f for f in found if f[3] is not None]
    print(f"renders: {len(renders)} at known EG3D cameras, dlib found {len(found)} faces ({time.time() - t:.0f} s)")
    for subset in [None] + list(EXPRESSIONS):
        rows = [f for f in found if subset is None or f" {subset} " in f[0]]
        print(f" {'all' if subset is None else subset}:")
        for mname, fn in METHODS.items():
            errs = [np.subtract(fn(lm, 256, 256, FOCAL * 256), tr) for _, _, tr, lm in rows]
            i, _ = report(mname, errs)
            if subset is None:
                print(f"    worst case: {rows[i][0]}, error (pitch, yaw, roll) {np.round(errs[i], 1)}")

    from skimage.data import astronaut
    import matplotlib

    photos = {"astronaut": astronaut(), "grace hopper": np.asarray(Image.open(
        f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg").convert("RGB"))}
    print("photos: mirror (error = yaw + yaw', roll + roll', pitch - pitch') and in-plane rotations (roll + theta)")
    for mname, fn in METHODS.items():
        mirror, rot = [], []
        for img in photos.values():
            h, w = img.shape[:2]
            base = np.array(fn(faces.landmarks(img), w, h))
            flip = np.array(fn(faces.landmarks(np.ascontiguousarray(img[:, ::-1])), w, h))
            mirror.append([base[0] - flip[0], base[1] + flip[1], base[2] + flip[2]])
            for a in ROTATIONS:
                r = np.asarray(Image.fromarray(img).rotate(a, resample=Image.BICUBIC))
                p = np.array(fn(faces.landmarks(r), w, h))
                rot.append([p[0] - base[0], p[1] - base[1], p[2] - base[2] + a])
        print(f" {mname}:")
        report("mirror", mirror)
        report("rotation", rot)


if __name__ == "__main__":
    main()

"""The procedural head is framed like EG3D's renders (dlib measures both the same way).

EG3D renders at yaw 0: inter-ocular distance 0.233 of the width, dlib face box 0.63 (issue 13).
benchmarks/bench_framing.py prints the full numbers (6 identities, three orbits)."""

import numpy as np
import pytest

pytest.importorskip("dlib")

from benchmarks_framing import frontal_framing, orbit_detections  # noqa: E402
from diffportrait3d.faces.dlib_models import dlib_faces  # noqa: E402


def test_frontal_framing_matches_eg3d():
    f = frontal_framing([0, 2, 3], 192, dlib_faces())
    iod, box = np.nanmean(f, 0)
    print(f"inter-ocular {iod:.3f} (EG3D 0.233), dlib box {box:.3f} (EG3D 0.63)")
    assert np.isfinite(f).all()
    assert iod == pytest.approx(0.233, abs=0.025)  # measured 0.244 at 256 px, HEAD_SCALE 1.15
    assert box == pytest.approx(0.63, abs=0.04)  # measured 0.609


def test_dlib_finds_the_face_along_an_orbit():
    hog, cnn = orbit_detections(2, 160, dlib_faces())
    print(f"dlib finds the face in {hog}/16 (HOG) and {cnn}/16 (HOG, then CNN) views of a -40..40 orbit")
    assert cnn >= 15  # measured 16/16 at 256 px; HOG alone 13/16 (target 15/16, not yet met)

"""ID with dlib's ResNet embedding on real face photos shipped in PyPI wheels: scikit-image's
astronaut (Eileen Collins) and matplotlib's Grace Hopper."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.errors import MetricUnavailable
from diffportrait3d.metrics.base import from_uint8_hwc
from diffportrait3d.metrics.identity import ARCFACE_TEMPLATE, ArcFaceOnnx, arcface_matrix, five_points, identity_similarity
from metrics_helpers import astronaut, grace_hopper

torch.set_num_threads(1)


def _square(img: np.ndarray, size: int = 512) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return np.asarray(Image.fromarray(img[top:top + s, left:left + s]).resize((size, size), Image.BICUBIC))


@pytest.fixture(scope="module")
def photos():
    a, g = astronaut(), _square(grace_hopper())
    rng = np.random.default_rng(0)
    variants = {
        "same": a,
        "noise": np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8),
        "flip": np.ascontiguousarray(a[:, ::-1]),
        "rotate15": np.asarray(Image.fromarray(a).rotate(15, resample=Image.BICUBIC)),
        "half-size": np.asarray(Image.fromarray(a).resize((256, 256), Image.BICUBIC).resize((512, 512), Image.BICUBIC)),
    }
    return a, g, variants


def test_same_face_scores_near_one_and_a_different_face_lower(photos):
    a, g, variants = photos
    gen = from_uint8_hwc(list(variants.values()) + [g])
    ref = from_uint8_hwc([a] * (len(variants) + 1))
    r = identity_similarity(gen, ref)
    same, other = r.per_image[:-1], r.per_image[-1]
    print("ID (dlib cosine):", dict(zip(list(variants) + ["grace-hopper"], np.round(r.per_image, 4))))
    assert r.backend.startswith("dlib") and r.reason is None
    assert same[0] > 0.999999  # the image with itself
    assert min(same) > 0.99  # noise, mirror, in-plane rotation, blur keep the identity
    assert other < 0.95  # a different person (measured: 0.890)
    assert other < min(same) - 0.05


def test_no_face_gives_no_value_and_is_counted(photos):
    a, _, _ = photos
    blank = torch.zeros(1, 3, 512, 512)
    r = identity_similarity(torch.cat([blank, from_uint8_hwc(a)]), from_uint8_hwc([a, a]))
    assert r.per_image[0] is None and r.per_image[1] > 0.999
    assert r.count == 1 and r.skipped == 1
    assert r.value == pytest.approx(r.per_image[1])
    assert "no face found in 1 of 2 generated" in r.reason


def test_arcface_alignment_puts_the_five_points_on_the_template(photos):
    from diffportrait3d.faces.dlib_models import dlib_faces

    a, g, _ = photos
    for img in (a, g):
        lm = dlib_faces().landmarks(img)
        m = arcface_matrix(lm)
        pts = five_points(lm) @ m[:, :2].T + m[:, 2]
        assert np.abs(pts - ARCFACE_TEMPLATE).max() < 6.0  # pixels of 112; a similarity cannot fit all five exactly


def test_arcface_without_model_file_is_na(tmp_path):
    with pytest.raises(MetricUnavailable, match="not found"):
        ArcFaceOnnx(tmp_path / "w600k_r50.onnx")


def test_models_are_found_without_pkg_resources(monkeypatch):
    # face_recognition_models' __init__ imports pkg_resources (gone in setuptools >= 82); we never run it
    import sys

    from diffportrait3d.faces.dlib_models import EMBEDDING_FILE, LANDMARKS_FILE, model_file

    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    monkeypatch.delitem(sys.modules, "face_recognition_models", raising=False)
    assert model_file(LANDMARKS_FILE, "POSE").stat().st_size > 90e6
    assert model_file(EMBEDDING_FILE, "ID").is_file()
    assert "face_recognition_models" not in sys.modules


def test_arcface_backend_runs_an_onnx_model_on_aligned_faces(photos, tmp_path):
    # a stand-in "recognition network" (channel means of the aligned 112x112 face) exercises the
    # whole path: landmarks, alignment, normalisation, onnxruntime, cosine
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from diffportrait3d.faces.dlib_models import dlib_faces
    from diffportrait3d.metrics.identity import align_arcface

    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [None, 3, 112, 112])
    y = helper.make_tensor_value_info("emb", TensorProto.FLOAT, [None, 3])
    nodes = [helper.make_node("GlobalAveragePool", ["input.1"], ["p"]), helper.make_node("Flatten", ["p"], ["emb"])]
    model = helper.make_model(helper.make_graph(nodes, "toy", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "toy.onnx")

    a, g, _ = photos
    embedder = ArcFaceOnnx(tmp_path / "toy.onnx")
    expected = (align_arcface(a, dlib_faces().landmarks(a)).astype(np.float64) - 127.5).mean((0, 1)) / 127.5
    assert embedder(a) == pytest.approx(expected, abs=1e-5)
    r = identity_similarity(from_uint8_hwc([a, g, np.zeros_like(a)]), from_uint8_hwc([a, a, a]), embedder)
    assert r.backend == "arcface-onnx (toy.onnx)"
    assert r.per_image[0] == pytest.approx(1.0) and r.per_image[2] is None

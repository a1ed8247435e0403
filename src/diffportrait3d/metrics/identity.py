"""ID: cosine similarity of face-recognition embeddings between generated and reference images.

Backends:
- "dlib" (default, offline): dlib's 128-d ResNet descriptor from the face-recognition-models
  wheel (`faces.py`). Its embeddings are not zero-centred, so different people still score
  about 0.85-0.9 cosine (dlib's own same-person rule is Euclidean distance < 0.6); compare
  methods with the same backend only.
- ArcFace (what the paper used): any insightface-style recognition ONNX file the user provides
  (e.g. w600k_r50.onnx: input (1, 3, 112, 112) RGB, (x - 127.5) / 127.5), run with
  onnxruntime when installed. Faces are aligned to ArcFace's 112x112 five-point template from
  dlib's landmarks.

A pair where either image has no detectable face gets no value; the result counts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import MetricUnavailable
from ..faces.dlib_models import require_cv2
from .base import MetricResult, check_pair, to_uint8_hwc

# ArcFace's reference positions (112x112) of left eye, right eye, nose tip, left/right mouth corner
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


class Embedder:
    """A face embedder: uint8 (H, W, 3) RGB -> 1-D embedding, or None when no face is found."""

    name: str = "?"

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError


class DlibEmbedder(Embedder):
    name = "dlib-resnet-v1 (face-recognition-models)"

    def __init__(self):
        from ..faces.dlib_models import dlib_faces

        try:
            self.faces = dlib_faces()
        except MetricUnavailable as e:
            raise MetricUnavailable("ID", e.reason) from None

    def __call__(self, image):
        return self.faces.embed(image)


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """dlib 68 landmarks -> ArcFace's 5 points (eye centres, nose tip, mouth corners)."""
    lm = np.asarray(landmarks68, np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def arcface_matrix(landmarks68: np.ndarray, size: int = 112) -> np.ndarray:
    """(2, 3) similarity transform taking the face's 5 points onto ArcFace's template (least squares)."""
    cv2 = require_cv2("ID")

    m, _ = cv2.estimateAffinePartial2D(five_points(landmarks68), ARCFACE_TEMPLATE * (size / 112.0), method=cv2.LMEDS)
    return m


def align_arcface(image: np.ndarray, landmarks68: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp the face onto ArcFace's template; uint8 (size, size, 3)."""
    cv2 = require_cv2("ID")

    return cv2.warpAffine(image, arcface_matrix(landmarks68, size), (size, size), borderValue=0.0)


class ArcFaceOnnx(Embedder):
    def __init__(self, onnx_path: str | Path):
        path = Path(onnx_path)
        if not path.is_file():
            raise MetricUnavailable("ID", f"ArcFace model {path} not found")
        try:
            import onnxruntime as ort
        except ImportError:
            raise MetricUnavailable("ID", "the ArcFace backend needs onnxruntime (pip install onnxruntime)") from None
        from ..faces.dlib_models import dlib_faces

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.faces = dlib_faces()
        self.name = f"arcface-onnx ({path.name})"

    def __call__(self, image):
        lm = self.faces.landmarks(image)
        if lm is None:
            return None
        face = align_arcface(image, lm).astype(np.float32)
        blob = ((face - 127.5) / 127.5).transpose(2, 0, 1)[None]
        return np.asarray(self.session.run(None, {self.input: blob})[0][0], np.float64)


def get_embedder(arcface_onnx: str | Path | None = None) -> Embedder:
    """ArcFace when an ONNX file is given, else dlib. Raises MetricUnavailable if neither loads."""
    return ArcFaceOnnx(arcface_onnx) if arcface_onnx else DlibEmbedder()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def embed_all(images: torch.Tensor, embedder: Callable) -> list[np.ndarray | None]:
    return [embedder(img) for img in to_uint8_hwc(images)]


def identity_similarity(generated: torch.Tensor, reference: torch.Tensor, embedder: Embedder | None = None) -> MetricResult:
    """ID per pair: cosine similarity of embeddings, higher is better. Inputs (N, 3, H, W) in [-1, 1].

    `reference` is the image whose identity should be kept (the reference portrait, or the
    ground-truth view). Pairs without a detectable face in either image get None.
    """
    x, y = check_pair(generated, reference)
    embedder = embedder or get_embedder()
    eg, er = embed_all(x, embedder), embed_all(y, embedder)
    values = [None if a is None or b is None else cosine(a, b) for a, b in zip(eg, er)]
    miss_g, miss_r = sum(a is None for a in eg), sum(b is None for b in er)
    reason = None
    if miss_g or miss_r:
        reason = f"no face found in {miss_g} of {len(eg)} generated and {miss_r} of {len(er)} reference images"
    return MetricResult.from_values("ID", values, backend=embedder.name, reason=reason)

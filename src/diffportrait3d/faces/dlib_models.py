"""dlib face detection, 68 landmarks and the ResNet face embedding, shared by alignment, ID and POSE.

The models are the files of the `face-recognition-models` wheel (dlib's
shape_predictor_68_face_landmarks.dat, dlib_face_recognition_resnet_model_v1.dat and the CNN
detector mmod_human_face_detector.dat, which also finds profiles the HOG detector misses), loaded
directly with `dlib-bin`. We locate them with importlib.util.find_spec, without importing the
package (its __init__ needs pkg_resources) and without `face_recognition` (which calls quit()
when pkg_resources is missing). Images are uint8 (H, W, 3) RGB arrays.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from ..errors import MetricUnavailable

LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
EMBEDDING_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
CNN_MAX_SIDE = 640  # the CNN detector runs on a copy this size at most (CPU time grows with pixels)


def model_file(name: str, metric: str) -> Path:
    """Path of a model file shipped in the face-recognition-models wheel."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable(metric, "face-recognition-models is not installed (pip install 'diffportrait3d[metrics]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise MetricUnavailable(metric, f"{name} is missing from the face-recognition-models package at {path.parent}")
    return path


def require_cv2(metric: str):
    try:
        import cv2
    except ImportError:
        raise MetricUnavailable(metric, "opencv is not installed (pip install opencv-python-headless)") from None
    return cv2


def _dlib(metric: str):
    try:
        import dlib
    except ImportError:
        raise MetricUnavailable(metric, "dlib is not installed (pip install dlib-bin, or 'diffportrait3d[metrics]')") from None
    return dlib


class DlibFaces:
    """Lazily loaded dlib models; one instance per process (see `dlib_faces`)."""

    def __init__(self, metric: str = "ID/POSE"):
        dlib = _dlib(metric)
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model_file(LANDMARKS_FILE, metric)))
        self._encoder = None
        self._cnn = None
        self._metric = metric

    def detect(self, image: np.ndarray, upsample: int = 1, cnn: bool = False, hog: bool = True):
        """The most confident face rectangle, or None. cnn: when HOG finds none, ask the CNN detector;
        hog=False: the CNN detector alone (for callers that already ran HOG on this image)."""
        rects, scores, _ = self.detector.run(image, upsample, 0.0) if hog else ([], [], [])
        if len(rects):
            return rects[int(np.argmax(scores))]
        return self._detect_cnn(image) if cnn else None

    def _detect_cnn(self, image: np.ndarray):
        if self._cnn is None:
            self._cnn = self._dlib.cnn_face_detection_model_v1(str(model_file(CNN_DETECTOR_FILE, self._metric)))
        k = max(image.shape[:2]) / CNN_MAX_SIDE
        small = image
        if k > 1:
            cv2 = require_cv2(self._metric)
            small = cv2.resize(image, (round(image.shape[1] / k), round(image.shape[0] / k)), interpolation=cv2.INTER_AREA)
        found = self._cnn(small, 1)
        if len(found) == 0:
            return None
        r = max(found, key=lambda d: d.confidence).rect
        k = max(k, 1.0)
        return self._dlib.rectangle(round(r.left() * k), round(r.top() * k), round(r.right() * k), round(r.bottom() * k))

    def shape(self, image: np.ndarray, rect):
        """dlib full_object_detection with 68 landmarks inside `rect`."""
        return self.predictor(image, rect)

    def landmarks(self, image: np.ndarray, upsample: int = 1, upright: bool = True, cnn: bool = False,
                  hog: bool = True) -> np.ndarray | None:
        """(68, 2) float64 landmark pixel coordinates (x, y) of the most confident face, or None.

        upright: when the eyes are tilted by more than 10 degrees, rotate the image so they are
        level, find the landmarks again and rotate them back (dlib's regressor is trained on
        upright faces and drifts beyond about 25 degrees of roll).
        """
        rect = self.detect(image, upsample, cnn, hog)
        if rect is None:
            return None
        pts = _points(self.shape(image, rect))
        if not upright:
            return pts
        (lx, ly), (rx, ry) = pts[36:42].mean(0), pts[42:48].mean(0)
        angle = np.degrees(np.arctan2(ry - ly, rx - lx))
        if abs(angle) <= 10:
            return pts
        cv2 = require_cv2(self._metric)

        centre = tuple(float(c) for c in pts.mean(0))
        m = cv2.getRotationMatrix2D(centre, angle, 1.0)  # level the eyes
        level = cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        rect2 = self.detect(level, upsample, cnn)  # the levelled image is new to HOG
        if rect2 is None:
            return pts
        back = cv2.invertAffineTransform(m)
        lv = _points(self.shape(level, rect2))
        return lv @ back[:, :2].T + back[:, 2]

    def refine(self, image: np.ndarray, pts: np.ndarray, rounds: int = 2) -> np.ndarray:
        """Landmarks again from a box set by the landmarks themselves, not by the detector.

        The detector's box sits differently on the same face at another scale or crop; the
        regressor follows it. A box from the face's own extent makes the landmarks (and so the
        alignment) repeatable: aligning an aligned image gives it back (tests/test_align.py).
        """
        for _ in range(rounds):
            c = (pts[36:48].mean(0) + pts[48:68].mean(0)) / 2
            half = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])) / 2
            box = self._dlib.rectangle(round(c[0] - half), round(c[1] - half), round(c[0] + half), round(c[1] + half))
            pts = _points(self.shape(image, box))
        return pts

    def embed(self, image: np.ndarray, upsample: int = 1) -> np.ndarray | None:
        """dlib's 128-d ResNet face descriptor of the most confident face, or None if none is found."""
        if self._encoder is None:
            self._encoder = self._dlib.face_recognition_model_v1(str(model_file(EMBEDDING_FILE, self._metric)))
        rect = self.detect(image, upsample)
        if rect is None:
            return None
        return np.array(self._encoder.compute_face_descriptor(image, self.shape(image, rect)), dtype=np.float64)


def _points(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


@functools.lru_cache(maxsize=1)
def dlib_faces() -> DlibFaces:
    return DlibFaces()


def face_landmarks(image: np.ndarray, cnn: bool = True, hog: bool = True) -> np.ndarray | None:
    """(68, 2) landmarks of the most confident face, HOG then (cnn) the CNN detector; None when there is none.

    Raises a UserError naming the extra to install when dlib or its models are missing.
    """
    from ..errors import UserError

    try:
        return dlib_faces().landmarks(image, cnn=cnn, hog=hog)
    except MetricUnavailable as e:
        raise UserError(f"face alignment needs dlib and its models: {e.reason}") from None

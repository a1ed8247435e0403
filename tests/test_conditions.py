"""Condition sources for dp3d render (renderer, folder, video)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.cameras import camera_label, label_to_angles
from diffportrait3d.head import PART, Expression, Identity, build_scene, render_head, render_scene
from diffportrait3d.conditions.sources import load_conditions, render_conditions
from diffportrait3d.errors import UserError
from diffportrait3d.media import save_video

torch.set_num_threads(1)
HEAD_PARTS = [PART[k] for k in ("skin", "nose", "ear", "eye", "brow", "lips", "mouth", "teeth", "hair", "glasses")]


def test_rendered_conditions_follow_the_camera():
    images, labels = load_conditions(None, 5, 48, yaw="-50:50", condition_seed=4)
    assert len(images) == 5 and labels.shape == (5, 25) and images[0].size == (48, 48)
    assert np.allclose(label_to_angles(labels)[0], np.linspace(-50, 50, 5), atol=1e-9)
    # the images are the proxy identity at those cameras ...
    assert np.array_equal(np.asarray(images[3]), np.asarray(render_conditions(labels[3:4], 48, 4)[0]))
    # ... so they change in the direction the camera moved: the nose swings from image right to left
    scene = build_scene(Identity.sample(4), Expression())
    offsets = []
    for label in labels:
        parts = render_scene(scene, label, 48).parts
        offsets.append(np.nonzero(parts == PART["nose"])[1].mean() - np.nonzero(np.isin(parts, HEAD_PARTS))[1].mean())
    assert np.all(np.diff(offsets) < -1) and offsets[0] > 0 > offsets[-1]
    consecutive = [np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() for a, b in zip(images, images[1:])]
    assert min(consecutive) > 3
    other, _ = load_conditions("render", 2, 48, yaw="0", path="orbit", condition_seed=5)
    assert np.abs(np.asarray(other[0], float) - np.asarray(images[2], float)).mean() > 5  # another proxy identity


def test_condition_paths_nod_and_file(tmp_path):
    _, labels = load_conditions(None, 3, 32, yaw="10", pitch="-20:20", path="nod")
    assert np.allclose(label_to_angles(labels)[1], [-20, 0, 20], atol=1e-9)
    (tmp_path / "cams.json").write_text(json.dumps([[0, 0], [30, 10]]))
    images, labels = load_conditions(None, 16, 32, path=str(tmp_path / "cams.json"))
    assert len(images) == 2 and np.allclose(label_to_angles(labels)[0], [0, 30], atol=1e-9)


def test_folder_source(tmp_path):
    colours = {"b.png": (0, 255, 0), "a.png": (255, 0, 0), "c.jpg": (0, 0, 255)}
    for name, colour in colours.items():
        Image.new("RGB", (40, 30), colour).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    images, labels = load_conditions(tmp_path, None, 24)
    assert labels is None and [im.size for im in images] == [(24, 24)] * 3
    assert [int(np.argmax(np.asarray(im)[12, 12])) for im in images] == [0, 1, 2]  # sorted: a, b, c
    meta = {"labels": [[n, list(camera_label(10 * i, 0))] for i, n in enumerate(["a.png", "b.png", "c.jpg"])]}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    _, labels = load_conditions(tmp_path, None, 24)
    assert np.allclose(label_to_angles(labels)[0], [0, 10, 20], atol=1e-9)


def test_video_without_faces(tmp_path):
    # frames are picked by head pose (tests/test_align.py); a video without a face says so
    frames = [Image.new("RGB", (32, 32), (20 * k, 0, 0)) for k in range(10)]
    save_video(frames, tmp_path / "cond.mp4", fps=5)
    with pytest.raises(UserError, match="no face found in any frame of .*cond.mp4"):
        load_conditions(tmp_path / "cond.mp4", 4, 16)


def test_bad_sources(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_conditions(tmp_path / "missing", 4, 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        load_conditions(tmp_path / "empty", 4, 32)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="video"):
        load_conditions(tmp_path / "broken.mp4", 4, 32)
    (tmp_path / "cams.txt").write_text("0 0")
    with pytest.raises(UserError):
        load_conditions(tmp_path / "cams.txt", 4, 32)

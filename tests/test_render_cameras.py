"""Renders remember their cameras: a folder output holds an EG3D dataset.json of its views."""

import json

import numpy as np
import pytest
from PIL import Image

from diffportrait3d.app import RenderSettings, render
from diffportrait3d.cameras import make_trajectory
from diffportrait3d.cli.main import main
from diffportrait3d.data.eg3d_index import EG3DIndex
from diffportrait3d.errors import UserError

SETTINGS = RenderSettings(views=3, steps=1, seed=1, group=3, yaw="-30:20", pitch="5")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "ref.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_render_folder_cameras_round_trip(tiny_pipe, reference, tmp_path):
    out = tmp_path / "out"
    result = render(SETTINGS, [reference], out, pipe=tiny_pipe)
    index = EG3DIndex(out)  # the dataset reader of training and `dp3d lift`
    assert [v.rel for v in index.views] == ["view_000.png", "view_001.png", "view_002.png"]
    assert np.array_equal(index.labels, result.labels)  # exactly: floats are written at full precision
    assert np.array_equal(index.labels, make_trajectory("-30:20", "5", 3, "orbit").labels)
    assert "dataset.json" in result.files


def test_a_users_dataset_json_is_never_replaced(tiny_pipe, reference, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    theirs = json.dumps({"labels": [["photo.png", [0.0] * 25]]})
    (out / "dataset.json").write_text(theirs)
    with pytest.raises(UserError, match="dataset.json that lists other images"):
        render(SETTINGS, [reference], out, pipe=tiny_pipe)
    assert (out / "dataset.json").read_text() == theirs and not list(out.glob("view_*"))


def test_views_without_known_cameras_drop_an_earlier_renders_cameras(tiny_pipe, reference, tmp_path):
    out, conds = tmp_path / "out", tmp_path / "conds"
    render(SETTINGS, [reference], out, pipe=tiny_pipe)
    conds.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (60 * i, 90, 120)).save(conds / f"{i}.png")  # no dataset.json: cameras unknown
    result = render(RenderSettings(**{**SETTINGS.__dict__, "views": None, "conditions": str(conds)}), [reference], out,
                    pipe=tiny_pipe)
    assert result.labels is None and not (out / "dataset.json").exists()


def test_render_batch_png_folders_hold_their_cameras(tiny_model_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 64), (40, 100, 200)).save(photos / "p0.png")
    out = tmp_path / "out"
    assert main(["render-batch", str(photos), "--model", str(tiny_model_dir), "--views", "2", "--steps", "1",
                 "--format", "png", "--yaw=-10:10", "-o", str(out)]) == 0
    index = EG3DIndex(out / "p0")
    assert np.array_equal(index.labels, make_trajectory("-10:10", "0", 2, "orbit").labels)

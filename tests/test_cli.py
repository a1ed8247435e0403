"""`dp3d` end to end on the tiny preset: files written, bad input -> one line and exit 2."""

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from diffportrait3d.cli.main import main

from sd_folder import make_tiny_sd

VECTORS = Path(__file__).parent / "reference_vectors"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    (d / "conds").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (70, 50, 3), dtype=np.uint8)).save(d / "conds" / f"{i}.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 4), dtype=np.uint8), "RGBA").save(d / "ref.png")
    return d


def test_render_video_and_folder(tiny_model_dir, files, capsys):
    out = files / "turn.mp4"
    assert main(["render", str(files / "ref.png"), "--model", str(tiny_model_dir), "--conditions", str(files / "conds"),
                 "-o", str(out), "--steps", "2"]) == 0
    frames = iio.imread(out)
    assert frames.shape == (3, 64, 64, 3)
    # a video's frames are picked by head pose (tests/test_align.py); 64 px renders hold no face dlib finds
    assert main(["render", str(files / "ref.png"), "--model", str(tiny_model_dir), "--conditions", str(out),
                 "--views", "2", "-o", str(files / "views"), "--steps", "2"]) == 2
    assert "no face found in any frame" in capsys.readouterr().err and not (files / "views").exists()
    assert main(["render", str(files / "ref.png"), "--model", str(tiny_model_dir), "--conditions", str(files / "conds"),
                 "-o", str(files / "views"), "--steps", "2"]) == 0
    names = sorted(p.name for p in (files / "views").iterdir())
    assert names == ["contact_sheet.png", "view_000.png", "view_001.png", "view_002.png"]
    sheet = Image.open(files / "views" / "contact_sheet.png")
    assert sheet.size[1] > 3 * 64  # reference, condition and view rows
    assert not [p for p in files.iterdir() if ".part" in p.name]  # nothing half-written


def test_render_says_how_it_cropped_the_photo(tiny_model_dir, files, tmp_path, capsys):
    """The default --crop auto: a photo is aligned, an aligned square is used as is; one line says which."""
    pytest.importorskip("dlib")
    from diffportrait3d.faces.crop import align_portrait
    from metrics_helpers import astronaut

    photo, aligned = tmp_path / "astronaut.png", tmp_path / "aligned.png"
    Image.fromarray(astronaut()).save(photo)
    align_portrait(Image.open(photo), 256).image.save(aligned)
    for image, line in ((photo, f"{photo}: aligned: face found, yaw -2°, pitch +4°"),
                        (aligned, f"{aligned}: used as is (already aligned"), (files / "ref.png", "ref.png: used as is (under 128 px")):
        assert main(["render", str(image), "--model", str(tiny_model_dir), "--conditions", str(files / "conds"),
                     "-o", str(tmp_path / f"out_{image.stem}"), "--steps", "1"]) == 0
        assert line in capsys.readouterr().err


def test_render_with_overlapping_windows_anchors_and_a_loop(tiny_model_dir, files):
    out = files / "loop"
    assert main(["render", str(files / "ref.png"), "--model", str(tiny_model_dir), "--conditions", str(files / "conds"),
                 "-o", str(out), "--steps", "2", "--group", "2", "--group-mode", "windows+anchors", "--anchors", "2", "--loop"]) == 0
    assert len(list(out.glob("view_*.png"))) == 3


@pytest.mark.parametrize("args, message", [
    (["render", "missing.png", "--conditions", "{conds}"], "file not found"),
    (["render", "{ref}", "--conditions", "{nowhere}"], "not found"),
    (["render", "{ref}", "--conditions", "{empty}"], "no images"),
    (["render", "{ref}", "--conditions", "{conds}", "--group", "40"], "1..32 views"),
    (["render", "{ref}", "--conditions", "{conds}", "--group-mode", "sliding"], "view method must be one of"),
    (["render", "{ref}", "--conditions", "{conds}", "--group-mode", "windows", "--overlap", "9"], "overlap must be in 0..7"),
    (["render", "{ref}", "--conditions", "{conds}", "--group-mode", "shifted+camera=1.5"], "must be a number in [0, 1), got 1.5"),
    (["render", "{ref}", "--conditions", "{conds}", "--group-mode", "shifted+camera=high"], "must be a number in [0, 1), got 'high'"),
    (["render", "{notimage}", "--conditions", "{conds}"], "not a readable image"),
])
def test_render_bad_input_exits_2(tiny_model_dir, files, capsys, args, message):
    (files / "empty").mkdir(exist_ok=True)
    (files / "notimage.jpg").write_text("hello")
    fmt = dict(conds=files / "conds", nowhere=files / "nowhere", empty=files / "empty", ref=files / "ref.png",
               notimage=files / "notimage.jpg")
    args = [a.format(**fmt) for a in args] + ["--model", str(tiny_model_dir), "-o", str(files / "bad.mp4"), "--steps", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if "error" in line.lower()]  # progress bars may precede it
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err
    assert not (files / "bad.mp4").exists()


def test_model_folder_lacking_a_part(tiny_model_dir, files, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    shutil.rmtree(broken / "controlnet")
    assert main(["render", str(files / "ref.png"), "--model", str(broken), "--conditions", str(files / "conds"), "-o", str(tmp_path / "x")]) == 2
    assert "lacks controlnet" in capsys.readouterr().err


def test_init_preset_and_convert_official(tmp_path, capsys):
    assert main(["init", "--preset", "tiny", "-o", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "model_index.json").read_text())["_class_name"] == "DiffPortrait3DPipeline"
    base = make_tiny_sd(tmp_path / "sd")
    cfg = tmp_path / "cfg.json"
    cfg.write_text((VECTORS / "tiny_config.json").read_text())
    out = tmp_path / "converted"
    assert main(["convert-official", str(VECTORS / "tiny_weights.safetensors"), "-o", str(out), "--base", str(base),
                 "--original-config", str(cfg)]) == 0
    assert "unused checkpoint keys: 0" in (out / "conversion_report.txt").read_text()
    from safetensors.torch import load_file

    from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

    pipe = DiffPortrait3DPipeline.from_pretrained(out)
    want = load_file(VECTORS / "tiny_weights.safetensors")["pose_control_model.middle_block_out.0.weight"]
    assert (pipe.controlnet.controlnet_mid_block.weight - want).abs().max().item() == 0
    # a foreign file is refused with one line
    (tmp_path / "junk.th").write_bytes(b"\x00junk")
    assert main(["convert-official", str(tmp_path / "junk.th"), "-o", str(tmp_path / "j")]) == 2
    assert not (tmp_path / "j").exists()


def test_dp3d_conditions_writes_a_reusable_camera_path(tmp_path):
    from diffportrait3d.cameras import label_to_angles
    from diffportrait3d.conditions.sources import load_conditions

    out = tmp_path / "conds"
    assert main(["conditions", "--yaw=-30:30", "--views", "3", "--res", "32", "-o", str(out)]) == 0
    images, labels = load_conditions(out, None, 32)  # reads the dataset.json written beside the images
    assert len(images) == 3 and images[0].size == (32, 32)
    assert np.allclose(label_to_angles(labels)[0], [-30, 0, 30], atol=1e-9)
    assert main(["conditions", "--views", "2", "--res", "32", "-o", str(out)]) == 2  # never writes into a full folder

"""scripts/package_miniature.py keeps what training saved in the model: the carrier style its view ControlNet learned
(overwriting the recipe's clay with colour made the packaged model misread the camera by ~95 degrees)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "package_miniature.py"


@pytest.mark.parametrize("saved,flag,packaged", [("clay", None, "clay"), (None, None, "colour"), ("clay", "colour", "colour")])
def test_packaging_keeps_the_trained_carrier_style(tiny_pipe, tmp_path, saved, flag, packaged):
    model = tmp_path / "model"
    tiny_pipe.save_pretrained(model)
    pipe = DiffPortrait3DPipeline.from_pretrained(model)
    pipe.register_to_config(carrier_style=saved)
    pipe.save_pretrained(model)
    out = tmp_path / "packaged"
    cmd = [sys.executable, str(SCRIPT), str(model), "--out", str(out)] + (["--carrier-style", flag] if flag else [])
    subprocess.run(cmd, check=True, capture_output=True)
    index = json.loads((out / "model_index.json").read_text())
    assert index["carrier_style"] == packaged
    assert index["condition_seed"] == 7 and index["noise_mean"] == "colour_pull"  # the sampling defaults it adds
    assert DiffPortrait3DPipeline.from_pretrained(out).config.carrier_style == packaged

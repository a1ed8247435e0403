"""Defaults tuned on one model live in its folder (issue 37): the shipped miniature model's model_index.json names
its carrier (condition seed 7), its colour pull and the pull's weights, its reference_position config the proxy
sphere; they are read from there, and the settings' own values win. (A folder without them renders as the
release: tests/test_converted_release.py.)"""

import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.app import RenderSettings
from diffportrait3d.app.render import make_conditions
from diffportrait3d.cameras import make_trajectory
from diffportrait3d.cli.main import main
from diffportrait3d.conditions.sources import model_condition_seed, render_conditions
from diffportrait3d.pipeline.loading import load_pipeline
from diffportrait3d.pipeline.model_folder import read_model_index
from diffportrait3d.pipeline.noise_mean import ColourPull


@pytest.fixture(scope="module")
def mini():
    pipe = load_pipeline("mini", "cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_mini_folder_stores_its_tuned_defaults(mini):
    index = read_model_index("mini")
    assert index["condition_seed"] == 7 and index["noise_mean"] == "colour_pull"
    assert ColourPull.from_config(index["colour_pull"]) == ColourPull(pull=0.5, full_degrees=30.0, none_degrees=60.0)
    assert mini.config.noise_mean == "colour_pull" and model_condition_seed(mini) == 7
    assert tuple(mini.reference_position.config.proxy_centre) == (0.0, 0.016, 0.0)
    assert mini.reference_position.config.proxy_radius == 0.266


def _same(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def test_the_conditions_use_the_model_carrier_unless_one_is_given(mini, tiny_pipe):
    labels = make_trajectory("-30:30", "0", 3, "orbit").labels
    drawn, _ = make_conditions(RenderSettings(views=3, yaw="-30:30"), 64, mini)
    assert _same(drawn, render_conditions(labels, 64, 7))
    asked, _ = make_conditions(RenderSettings(views=3, yaw="-30:30", condition_seed=3), 64, mini)
    assert _same(asked, render_conditions(labels, 64, 3)) and not _same(asked, drawn)
    plain, _ = make_conditions(RenderSettings(views=3, yaw="-30:30"), 64, tiny_pipe)  # a model that names none
    assert _same(plain, render_conditions(labels, 64, 0)) and not _same(plain, drawn)


def test_dp3d_conditions_draws_the_model_carrier(tiny_model_dir, tmp_path):
    labels = make_trajectory("-30:30", "0", 2, "orbit").labels
    for model, extra, seed in (("mini", [], 7), (str(tiny_model_dir), [], 0), ("mini", ["--condition-seed", "4"], 4)):
        out = tmp_path / f"{seed}"
        assert main(["conditions", "--yaw=-30:30", "--views", "2", "--res", "32", "--model", model, *extra, "-o", str(out)]) == 0
        assert _same([Image.open(out / f"view_{i:03d}.png") for i in range(2)], render_conditions(labels, 32, seed))


def test_a_clay_trained_controlnet_gets_clay_carriers(tiny_pipe, tmp_path, caplog):
    """The view stage's carrier_style is saved with the model, and everything that draws its carriers reads it:
    `dp3d render`'s conditions, `dp3d conditions`, the next stage's rendered carriers; the user's own condition
    images are read as given, with a warning; a bad style is one line."""
    import copy

    from diffportrait3d.errors import UserError
    from diffportrait3d.training.stages import stage_class
    from diffportrait3d.training.stages.diffportrait3d import ViewOptions

    stage = stage_class("view")(copy.deepcopy(tiny_pipe), options=ViewOptions(carrier_style="clay"))
    stage.export(tmp_path / "m")
    assert read_model_index(tmp_path / "m")["carrier_style"] == "clay"
    pipe = load_pipeline(str(tmp_path / "m"), "cpu")
    labels = make_trajectory("-30:30", "0", 2, "orbit").labels
    drawn, _ = make_conditions(RenderSettings(views=2, yaw="-30:30"), 32, pipe)
    assert _same(drawn, render_conditions(labels, 32, 0, "clay")) and not _same(drawn, render_conditions(labels, 32, 0))
    assert main(["conditions", "--yaw=-30:30", "--views", "2", "--res", "32", "--model", str(tmp_path / "m"),
                 "-o", str(tmp_path / "c")]) == 0
    assert _same([Image.open(tmp_path / "c" / f"view_{i:03d}.png") for i in range(2)], drawn)
    assert not any("clay carriers" in r.message for r in caplog.records)
    given, _ = make_conditions(RenderSettings(conditions=str(tmp_path / "c")), 32, pipe)
    assert _same(given, drawn) and any("trained on clay carriers" in r.message for r in caplog.records)
    from diffportrait3d.data.synth import SynthConfig, synth
    from diffportrait3d.training.config import TrainConfig

    synth(tmp_path / "d", SynthConfig(subjects=1, views=2, res=32), progress=False)
    for name, grey in (("consistency", True), ("view", False)):  # the next stage draws the model's style; a new view
        stage = stage_class(name)(copy.deepcopy(pipe), views=2)  # stage (option default: colour) its own
        item = stage.dataset(TrainConfig(stage=name, data=str(tmp_path / "d"), views=2))[0]
        cond = item["condition"] if "condition" in item else item["conditions"][0]
        assert (torch.equal(cond[0], cond[1]) and torch.equal(cond[1], cond[2])) == grey
    with pytest.raises(UserError, match="carrier_style"):
        ViewOptions(carrier_style="plastic")
    index = tmp_path / "m" / "model_index.json"
    index.write_text(index.read_text().replace('"clay"', '"plastic"'))
    with pytest.raises(UserError, match='"carrier_style"'):
        load_pipeline(str(tmp_path / "m"), "cpu")

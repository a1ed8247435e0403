"""noise_mean="colour_pull" (old name "reference"; pipeline/noise_mean.py): the views near the reference's camera measure how far each
step's clean-latent prediction is from the reference's per-channel mean, and one shift moves every view; which views
measure it is the model folder's setting (model_index.json "colour_pull")."""

import copy

import numpy as np
import pytest
import torch

from diffportrait3d.cameras import camera_labels
from diffportrait3d.media import images_to_tensor
from diffportrait3d.errors import UserError
from diffportrait3d.pipeline.noise_mean import ColourPull, pull_to_reference_mean, reference_pull
from diffportrait3d.pipeline.schedule import sd15_alphas_cumprod

from test_pipeline import images, run

torch.set_num_threads(1)


def test_one_shift_moves_the_mean_of_every_implied_clean_latent():
    """The near view (weight 0.5) measures the gap to the reference's mean; both views' clean latents move by
    half of it, and nothing but their means moves; with no view near, nothing moves at all."""
    a = sd15_alphas_cumprod()
    g = torch.Generator().manual_seed(0)
    x, eps, ref = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g), torch.randn(4, generator=g)
    pulled = pull_to_reference_mean(lambda x_in, t: eps, a, ref, pull=torch.tensor([0.5, 0.0]))
    for t in (999, 500, 20):
        s = a[t]
        x0 = (x - (1 - s).sqrt() * eps) / s.sqrt()
        y0 = (x - (1 - s).sqrt() * pulled(x, torch.tensor(t))) / s.sqrt()
        m0, m1 = x0.mean((2, 3)), y0.mean((2, 3))
        shift = 0.5 * (m0[0] - ref)
        assert torch.allclose(m1[0], m0[0] - shift, atol=1e-4)  # half-way to the reference's mean
        assert torch.allclose(m1[1], m0[1] - shift, atol=1e-4)  # the far view moves alike
        assert torch.allclose(y0 - m1[..., None, None], x0 - m0[..., None, None], atol=1e-4)  # nothing else moves
    none_near = pull_to_reference_mean(lambda x_in, t: eps, a, ref, pull=torch.zeros(2))
    assert torch.equal(none_near(x, torch.tensor(500)), eps)


def test_the_pull_fades_with_the_angle_to_the_reference():
    got = reference_pull(torch.tensor([0.0, 30.0, 45.0, 60.0, 120.0]))
    assert torch.allclose(got, torch.tensor([0.5, 0.5, 0.25, 0.0, 0.0]))
    assert reference_pull(None) == 0.5  # no cameras: every view
    # a model's own weights (model_index.json "colour_pull")
    wide = ColourPull.from_config({"pull": 1.0, "full_degrees": 80, "none_degrees": 120})
    assert torch.allclose(reference_pull(torch.tensor([0.0, 90.0, 120.0]), wide), torch.tensor([1.0, 0.75, 0.0]))
    assert ColourPull.from_config(None) == ColourPull()
    for bad in ({"full": 30}, {"full_degrees": 60, "none_degrees": 30}, [0.5]):
        with pytest.raises(UserError, match='"colour_pull"'):
            ColourPull.from_config(bad)


def _latent_means(pipe, angles, mean):
    labels = camera_labels(angles, np.zeros(len(angles)))
    out = run(pipe, n=len(angles), num_inference_steps=4, output_type="latent", noise_mean=mean, condition_labels=labels,
              reference_label=camera_labels([0], [0])[0]).images
    return out.mean((2, 3))


def test_reference_mode_brings_the_reference_colour_back_at_its_camera_and_leaves_far_views(tiny_pipe):
    ref = tiny_pipe.encode(images_to_tensor(images(1, 100), 64)).mean((0, 2, 3))
    near_remove, near = _latent_means(tiny_pipe, [0, 0, 10], "remove"), _latent_means(tiny_pipe, [0, 0, 10], "colour_pull")
    gap_remove, gap = (near_remove - ref).abs().mean(1), (near - ref).abs().mean(1)
    assert (gap < 0.6 * gap_remove).all(), (gap, gap_remove)
    # 90 degrees from the reference the pull is 0: the same numbers as "remove"
    assert torch.equal(_latent_means(tiny_pipe, [90, 90, -90], "remove"), _latent_means(tiny_pipe, [90, 90, -90], "colour_pull"))
    assert torch.equal(near, _latent_means(tiny_pipe, [0, 0, 10], "reference"))  # the old name, the same pull


def test_the_model_folder_sets_which_views_measure_the_pull(tiny_pipe, tmp_path):
    """A folder's "colour_pull" weights are read back and used: with views up to 120 degrees measuring the gap, the
    views at 90 degrees are pulled (with the defaults they are the "remove" run); an old folder's "reference" loads
    as colour_pull."""
    wide = copy.deepcopy(tiny_pipe)
    wide.register_to_config(colour_pull={"pull": 0.5, "full_degrees": 100.0, "none_degrees": 120.0}, noise_mean="reference")
    wide.save_pretrained(tmp_path)
    loaded = type(tiny_pipe).from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.colour_pull == {"pull": 0.5, "full_degrees": 100.0, "none_degrees": 120.0}
    assert loaded.config.noise_mean == "colour_pull"
    ref = tiny_pipe.encode(images_to_tensor(images(1, 100), 64)).mean((0, 2, 3))
    far_remove, far = _latent_means(loaded, [90, 90, -90], "remove"), _latent_means(loaded, [90, 90, -90], None)  # None: the folder's
    gap_remove, gap = (far_remove - ref).abs().mean(1), (far - ref).abs().mean(1)
    print(f"gap to the reference's mean at 90 degrees: remove {gap_remove.tolist()}, wide pull {gap.tolist()}")
    assert (gap < 0.8 * gap_remove).all(), (gap, gap_remove)

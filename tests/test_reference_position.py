"""The read path's position bias (models/reference_position.py): its kernel, the attention it biases,
that a large gain copies the reference token at the same place, that it saves and loads with the
pipeline, that the reference stage trains it (and only it, of the read path) at its own rate, and its
camera-aware kernel: the proxy sphere's warp (models/proxy_warp.py) checked against ray casting."""

import copy
import math

import torch
from diffusers.models.attention_processor import Attention

from diffportrait3d.cameras import LOOKAT, camera_labels, camera_origin
from diffportrait3d.cameras.eg3d_torch import pixel_uv, rays
from diffportrait3d.models.denoiser import guided_eps, naive_guided_eps
from diffportrait3d.models.proxy_warp import CENTRE, RADIUS, token_warp
from diffportrait3d.models.reference_attention import _attend_with_reference
from diffportrait3d.models.reference_position import ReferencePositionBias
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
from diffportrait3d.training.config import TrainConfig
from diffportrait3d.training.loop import train
from diffportrait3d.training.stages import stage_class
from diffportrait3d.training.stages.diffportrait3d import ReferenceOptions

from toy_data import ToySet

LAYER = "layer.attn1.processor"


def test_bias_is_the_gaussian_of_the_distance_on_reference_tokens_only():
    pos = ReferencePositionBias(layers=(LAYER,), heads=2, sigma=0.1, initial_gain=2.0)
    with torch.no_grad():
        pos.gain[0, 1] = -1.0
    b = pos.bias(LAYER, 16, 32, heads=2)  # a 4x4 grid, 2 references
    assert b.shape == (2, 16, 48)
    assert torch.equal(b[:, :, :16], torch.zeros(2, 16, 16))  # own tokens: no bias
    assert torch.equal(b[:, :, 16:32], b[:, :, 32:])  # each reference gets the same kernel
    # token (0, 0) against itself, its right neighbour (distance 1/4) and the diagonal one
    near = math.exp(-(0.25**2) / (2 * 0.1**2))
    assert torch.allclose(b[:, 0, 16 + torch.tensor([0, 1, 5])],
                          torch.tensor([[2.0, 2 * near, 2 * near**2], [-1.0, -near, -(near**2)]]), atol=1e-6)


def _attention(seed=0):
    torch.manual_seed(seed)
    return Attention(query_dim=16, heads=2, dim_head=8).eval()


@torch.no_grad()
def test_biased_attention_is_the_softmax_of_the_biased_logits():
    attn = _attention()
    h, h_ref = torch.randn(3, 16, 16), torch.randn(1, 32, 16)
    bias = torch.randn(2, 16, 48)
    out = _attend_with_reference(attn, h, attn.to_k(h_ref), attn.to_v(h_ref), bias)
    split = lambda x: x.view(x.shape[0], -1, 2, 8).transpose(1, 2)  # noqa: E731
    q = split(attn.to_q(h))
    k = split(torch.cat([attn.to_k(h), attn.to_k(h_ref).expand(3, -1, -1)], 1))
    v = split(torch.cat([attn.to_v(h), attn.to_v(h_ref).expand(3, -1, -1)], 1))
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8) + bias, dim=-1)
    manual = attn.to_out[0]((w @ v).transpose(1, 2).reshape(3, 16, 16))
    assert torch.allclose(out, manual, atol=1e-5)


@torch.no_grad()
def test_a_large_gain_copies_the_reference_token_at_the_same_place():
    attn = _attention(1)
    pos = ReferencePositionBias(layers=(LAYER,), heads=2, sigma=0.04, initial_gain=200.0)
    h, h_ref = torch.randn(2, 16, 16), torch.randn(1, 16, 16)
    out = _attend_with_reference(attn, h, attn.to_k(h_ref), attn.to_v(h_ref), pos.bias(LAYER, 16, 16, 2))
    copied = attn.to_out[0](attn.to_v(h_ref)).expand(2, -1, -1)
    assert torch.allclose(out, copied, atol=1e-4)
    plain = _attend_with_reference(attn, h, attn.to_k(h_ref), attn.to_v(h_ref))
    assert (plain - copied).abs().mean() > 0.1  # without the bias the output is a mixture


def _with_position(pipe, gain):
    p = copy.deepcopy(pipe)
    p.register_modules(reference_position=ReferencePositionBias.for_unet(p.unet, gain=gain).eval())
    return p


def _eps(pipe, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, ref = torch.randn(2, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    cond = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        return guided_eps(pipe.networks, x, 500, pipe.prompt_embedding(1), ref, cond)[0]


def test_zero_gain_changes_nothing_and_a_gain_changes_the_prediction(tiny_pipe):
    assert tiny_pipe.reference_position is None
    plain = _eps(tiny_pipe)
    assert torch.allclose(_eps(_with_position(tiny_pipe, 0.0)), plain, atol=1e-5)  # SDPA with a mask: another kernel
    assert (_eps(_with_position(tiny_pipe, 3.0)) - plain).abs().max() > 1e-3


def test_the_batched_and_the_authors_order_agree_with_a_camera_centred_bias(tiny_pipe):
    pipe = _with_position(tiny_pipe, 3.0)
    g = torch.Generator().manual_seed(0)
    x, ref = torch.randn(2, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g)
    cond = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    cameras = (_labels((10, 0))[None], _labels((40, 0), (-30, 5)))
    with torch.no_grad():
        ours = guided_eps(pipe.networks, x, 500, pipe.prompt_embedding(1), ref, cond, cameras=cameras)[0]
        naive = naive_guided_eps(pipe.networks, x, 500, pipe.prompt_embedding(1), ref, cond, cameras=cameras)[0]
        plain = guided_eps(pipe.networks, x, 500, pipe.prompt_embedding(1), ref, cond)[0]
    assert torch.allclose(ours, naive, atol=1e-5) and (ours - plain).abs().max() > 1e-3


def test_saved_and_loaded_with_the_pipeline(tiny_pipe, tiny_model_dir, tmp_path):
    p = _with_position(tiny_pipe, 3.0)
    with torch.no_grad():
        p.reference_position.gain.copy_(torch.randn(p.reference_position.gain.shape))
    p.save_pretrained(tmp_path)
    q = DiffPortrait3DPipeline.from_pretrained(tmp_path)
    assert torch.equal(q.reference_position.gain, p.reference_position.gain)
    assert torch.equal(_eps(q), _eps(p))
    assert DiffPortrait3DPipeline.from_pretrained(tiny_model_dir).reference_position is None  # folders without one


def _cfg(tmp_path, stage, **kw):
    base = dict(stage=stage, data="toy", model="toy", output=str(tmp_path / stage), max_steps=3, batch_size=2, lr=1e-6,
                save_every=2, sample_every=0, log_every=1, views=2, workers=0)
    return TrainConfig(**{**base, **kw})


def test_the_reference_stage_trains_the_gains_at_their_own_rate_and_later_stages_keep_them(tiny_pipe, tmp_path):
    options = ReferenceOptions(position_gain=2.0, position_lr=0.1)
    stage = stage_class("reference")(copy.deepcopy(tiny_pipe), views=2, options=options)
    assert stage.position is not None and torch.equal(stage.position.gain, torch.full_like(stage.position.gain, 2.0))
    unet_before = {n: p.detach().clone() for n, p in stage.reference_unet.named_parameters() if p.requires_grad}
    train(_cfg(tmp_path, "reference"), stage, ToySet(), progress=False)
    moved = (stage.position.gain - 2.0).abs()
    assert moved.max() > 0.05  # Adam moves each gain by up to lr = 0.1 a step
    unet_moved = max((p.detach() - unet_before[n]).abs().max().item()
                     for n, p in stage.reference_unet.named_parameters() if n in unet_before)
    assert 0 < unet_moved < 1e-4  # the UNet at lr 1e-6
    model = DiffPortrait3DPipeline.from_pretrained(tmp_path / "reference" / "model")
    assert torch.equal(model.reference_position.gain, stage.position.gain.detach())
    view = stage_class("view")(model, views=2)
    assert view.reference in view.frozen()
    train(_cfg(tmp_path, "view", lr=1e-3), view, ToySet(), progress=False)
    assert torch.equal(model.reference_position.gain, stage.position.gain.detach())


def test_resume_with_a_position_bias_is_exact(tiny_pipe, tmp_path):
    options = ReferenceOptions(position_gain=2.0, position_lr=0.1)
    make = lambda: stage_class("reference")(copy.deepcopy(tiny_pipe), views=2, options=options)  # noqa: E731
    straight = make()
    train(_cfg(tmp_path / "a", "reference", max_steps=4), straight, ToySet(6), progress=False)
    half = make()
    train(_cfg(tmp_path / "b", "reference", max_steps=2), half, ToySet(6), progress=False)
    resumed = make()
    train(_cfg(tmp_path / "b", "reference", max_steps=4), resumed, ToySet(6), resume=True, progress=False)
    assert torch.equal(straight.position.gain, resumed.position.gain)
    assert not torch.equal(straight.position.gain, half.position.gain)


# -- the camera-aware kernel (models/proxy_warp.py) -----------------------------------------------

def _labels(*angles):
    return torch.tensor(camera_labels([a[0] for a in angles], [a[1] for a in angles]), dtype=torch.float32)


def _sphere_hit(label, uv):
    """Nearest hit of the rays through uv (n, 2) of one camera with the proxy sphere, (n, 3), NaN on a miss."""
    o, d = rays(label[None], uv)
    oc = (o - torch.tensor(CENTRE, dtype=torch.float64))[:, None]
    half_b = (d * oc).sum(-1)
    disc = half_b**2 - (oc**2).sum(-1) + RADIUS**2
    s = torch.where(disc > 0, -half_b - disc.clamp_min(0).sqrt(), torch.nan)
    return (o[:, None] + s[..., None] * d)[0]


def test_the_warp_is_the_identity_at_the_reference_camera():
    cams = _labels((0, 0), (30, -10), (-45, 15))
    uv, visible = token_warp(cams[:, None], cams, 12)
    assert torch.allclose(uv, pixel_uv(12, 12).reshape(1, 1, -1, 2).float().expand_as(uv), atol=1e-6)
    assert torch.equal(visible, torch.ones_like(visible))


def test_a_warped_token_is_the_same_surface_point_seen_from_the_reference():
    """Round trip: the reference's ray through where a target token lands hits the sphere at the target
    token's own surface point exactly when that point is marked visible; misses stay in place."""
    ref, targets = _labels((-20, 5)), _labels((35, 0), (120, -10))
    uv, visible = token_warp(ref[None], targets, 16)
    grid = pixel_uv(16, 16).reshape(-1, 2)
    for b in range(2):
        x_target = _sphere_hit(targets[b], grid)
        x_ref = _sphere_hit(ref[0], uv[b, 0].double())
        hit = ~x_target[:, 0].isnan()
        same = (x_target - x_ref).norm(dim=-1) < 1e-4
        assert hit.sum() > 40 and torch.equal(same[hit], visible[b, 0][hit].bool())
        assert torch.allclose(uv[b, 0][~hit], grid[~hit].float()) and visible[b, 0][~hit].eq(1).all()
    assert visible[0, 0].mean() > 0.9 > 0.6 > visible[1, 0].mean()  # 140 degrees away much of the face is hidden


def test_the_camera_aware_bias_equals_the_plain_one_at_the_reference_camera_and_moves_with_the_camera():
    pos = ReferencePositionBias(layers=(LAYER,), heads=2, sigma=0.05, initial_gain=2.0)
    ref = _labels((10, 0))
    same = pos.bias(LAYER, 64, 64, 2, (ref[None], ref.expand(3, -1)))
    assert same.shape == (3, 2, 64, 128)
    assert torch.allclose(same, pos.bias(LAYER, 64, 64, 2).expand(3, -1, -1, -1), atol=1e-6)
    # a frontal reference seen from yaw +-30: the image centre's surface point lies off-centre in the
    # reference, mirrored between the two, on the same row (a 9x9 grid has a token at the centre)
    front = _labels((0, 0))
    peaks = pos.bias(LAYER, 81, 81, 2, (front[None], _labels((30, 0), (-30, 0))))[:, 0, 40, 81:].argmax(-1)
    rows, cols = peaks // 9, peaks % 9
    assert rows.tolist() == [4, 4] and cols[0] + cols[1] == 8 and cols[0] != 4


def _render(pipe, labels, views="groups"):
    g = torch.Generator().manual_seed(0)
    ref, conds = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1, torch.rand(4, 3, 64, 64, generator=g) * 2 - 1
    return pipe(ref, conds, num_inference_steps=2, proxy_images=None, condition_labels=labels, reference_label=_labels((20, 0))[0],
                group_size=2, views=views, generator=torch.Generator().manual_seed(1), output_type="pt").images


def test_the_pipeline_centres_the_bias_with_the_cameras_it_is_given(tiny_pipe):
    """Views at the reference's camera render exactly as without cameras (the identity warp), through groups
    and through anchors (rendered views become references with their own cameras); moved cameras change them."""
    pipe = _with_position(tiny_pipe, 3.0)
    at_reference = _labels(*[(20, 0)] * 4)
    for views in ("groups", "groups+anchors"):
        assert torch.allclose(_render(pipe, at_reference, views), _render(pipe, None, views), atol=1e-5)
    assert (_render(pipe, _labels((20, 0), (40, 0), (-30, 0), (60, 10))) - _render(pipe, None)).abs().max() > 1e-3


# -- a second gain for moved cameras ---------------------------------------------------------------

def test_moved_gains_blend_by_the_angle_between_the_viewing_directions():
    pos = ReferencePositionBias(layers=(LAYER,), heads=2, sigma=0.05, initial_gain=2.0).with_moved_gains(12.0)
    cams = _labels((0, 0), (0, 0), (8, 3), (40, -10))
    same = pos.bias(LAYER, 64, 64, 2, (cams[:1][None], cams))
    assert torch.equal(same, ReferencePositionBias(layers=(LAYER,), heads=2, sigma=0.05, initial_gain=2.0)
                       .bias(LAYER, 64, 64, 2, (cams[:1][None], cams)))  # moved gains start equal: nothing changes
    with torch.no_grad():
        pos.moved_gain.fill_(-1.0)
    # theta from the camera centres and the look-at point, independently of the labels' axes
    forward = torch.tensor(LOOKAT, dtype=torch.float64) - torch.tensor(camera_origin([0, 0, 8, 40], [0, 0, 3, -10]))
    forward = forward / forward.norm(dim=-1, keepdim=True)
    theta = torch.rad2deg(torch.arccos((forward[:1] * forward).sum(-1).clamp(-1, 1)))
    w = torch.exp(-(theta**2) / (2 * 12.0**2))
    kernels = pos.warped_kernel(64, (cams[:1][None], cams))  # (4, 64, 64)
    expected = (-1.0 + 3.0 * w)[:, None, None, None].float() * kernels[:, None]
    assert torch.allclose(pos.bias(LAYER, 64, 64, 2, (cams[:1][None], cams))[..., 64:], expected.expand(-1, 2, -1, -1), atol=1e-5)
    assert w[1] == 1 and 0.5 < w[2] < 0.9 and w[3] < 0.01


def test_a_bias_with_moved_gains_saves_and_loads(tiny_pipe, tmp_path):
    p = _with_position(tiny_pipe, 3.0)
    p.register_modules(reference_position=p.reference_position.with_moved_gains(10.0))
    with torch.no_grad():
        p.reference_position.moved_gain.copy_(torch.randn(p.reference_position.moved_gain.shape))
    p.save_pretrained(tmp_path)
    q = DiffPortrait3DPipeline.from_pretrained(tmp_path).reference_position
    assert q.config.moved_degrees == 10.0 and torch.equal(q.moved_gain, p.reference_position.moved_gain)


def test_train_unet_false_trains_only_the_bias(tiny_pipe, tmp_path):
    options = ReferenceOptions(position_gain=2.0, position_lr=0.1, position_moved_degrees=10.0, train_unet=False)
    stage = stage_class("reference")(copy.deepcopy(tiny_pipe), views=2, options=options)
    before = copy.deepcopy(stage.reference_unet.state_dict())
    train(_cfg(tmp_path, "reference", lr=1e-3), stage, ToySet(), progress=False)
    assert all(torch.equal(v, stage.reference_unet.state_dict()[k]) for k, v in before.items())
    assert (stage.position.gain - 2.0).abs().max() > 0.05


def test_the_proxy_sphere_is_the_model_config(tmp_path):
    """The sphere the warp casts rays on is part of the position bias's config (a model trained on other heads brings
    its own): the default is proxy_warp's fitted sphere, another one moves the kernel, and it survives a save."""
    refs = torch.as_tensor(camera_labels([0.0], [0.0]), dtype=torch.float32)[None]
    targets = torch.as_tensor(camera_labels([30.0], [0.0]), dtype=torch.float32)
    default = ReferencePositionBias(layers=(LAYER,), heads=2)
    assert tuple(default.config.proxy_centre) == CENTRE and default.config.proxy_radius == RADIUS
    uv, visible = token_warp(refs, targets, 4)
    n = 16
    want = torch.exp(-torch.cdist(uv.flip(-1)[0, 0].double(), default._grid(4).double()) ** 2 / (2 * 0.04**2)).float() * visible[0, 0, :, None]
    assert torch.allclose(default.warped_kernel(n, (refs, targets))[0], want, atol=1e-6)
    wide = ReferencePositionBias(layers=(LAYER,), heads=2, proxy_radius=0.4)
    assert (wide.warped_kernel(n, (refs, targets)) - default.warped_kernel(n, (refs, targets))).abs().max() > 0.1
    wide.save_pretrained(tmp_path)
    assert ReferencePositionBias.from_pretrained(tmp_path).config.proxy_radius == 0.4

"""The procedural head: determinism, mirror symmetry, geometry consistent with the camera labels."""

import numpy as np
import pytest
import torch

from diffportrait3d.cameras import camera_label, project
from diffportrait3d.head import PART, Expression, Identity, build_scene, render_head, render_scene
from diffportrait3d.head.shading import background, to_srgb

torch.set_num_threads(1)


def test_deterministic_per_seed_and_seeds_differ():
    a = render_head(3, camera_label(20, 5), 48).image
    b = render_head(3, camera_label(20, 5), 48).image
    c = render_head(4, camera_label(20, 5), 48).image
    assert np.array_equal(a, b)
    assert np.abs(a.astype(float) - c).mean() > 10
    assert Identity.sample(3) == Identity.sample(3) and Identity.sample(3) != Identity.sample(4)


@pytest.mark.parametrize("seed", [0, 7, 19])  # 19 wears glasses
def test_symmetric_identity_mirrors_under_opposite_yaw(seed):
    scene = build_scene(Identity.sample(seed).symmetric(), Expression())
    plus = render_scene(scene, camera_label(30, 0), 64).image.astype(float)
    minus = render_scene(scene, camera_label(-30, 0), 64).image.astype(float)
    mirrored = np.abs(plus - minus[:, ::-1]).mean()
    unmirrored = np.abs(plus - minus).mean()
    # measured: exactly 0 (rays, field and shading are all mirror-symmetric) against about 15 unmirrored
    assert mirrored < 0.05
    assert unmirrored > 5


HEAD_PARTS = [PART[k] for k in ("skin", "nose", "ear", "eye", "brow", "lips", "mouth", "teeth", "hair", "glasses")]


def nose_offsets(scene, labels, res=64):
    """Horizontal nose position relative to the head, from the part mask and from projection."""
    from_mask, from_projection = [], []
    for label in labels:
        r = render_scene(scene, label, res)
        head_cols = np.nonzero(np.isin(r.parts, HEAD_PARTS))[1]
        from_mask.append(np.nonzero(r.parts == PART["nose"])[1].mean() - head_cols.mean())
        head_centre = project(np.array([0.0, 0.05, -0.03]), label, res)[0]
        from_projection.append(project(scene.landmarks.nose_tip, label, res)[0] - head_centre)
        # the projected tip lands on the nose in the render: the image agrees with its label
        x, y = project(scene.landmarks.nose_tip, label, res).astype(int)
        assert PART["nose"] in r.parts[y - 1:y + 2, x - 1:x + 2]
    return np.array(from_mask), np.array(from_projection)


def test_nose_follows_yaw_along_an_orbit():
    scene = build_scene(Identity.sample(5), Expression())
    yaws = np.linspace(-60, 60, 7)
    from_mask, from_projection = nose_offsets(scene, [camera_label(y, 0) for y in yaws])
    # positive yaw moves the camera to the subject's left: the nose turns to image left of the head
    # (the nose tip itself stays near the image centre: it is close to the look-at point)
    assert np.all(np.diff(from_mask) < -1.5) and np.all(np.diff(from_projection) < -1.5)
    assert np.all(np.sign(from_mask[[0, 1, 2, 4, 5, 6]]) == [1, 1, 1, -1, -1, -1])
    assert abs(from_mask[3]) < 1.0


@pytest.mark.parametrize("yaw", [-90, -60, -30, 0, 30, 60, 90])
@pytest.mark.parametrize("pitch", [-30, 30])
def test_looks_like_a_head_from_every_angle(yaw, pitch):
    r = render_head(7, camera_label(yaw, pitch), 48)  # short hair: the ears show
    present = set(np.unique(r.parts).tolist())
    assert {PART["skin"], PART["hair"], PART["nose"]} <= present
    if abs(yaw) <= 60:
        assert PART["eye"] in present
    if abs(yaw) >= 60:
        assert PART["ear"] in present
    assert 0.25 < r.mask.mean() < 0.9


def test_back_view_is_hair():
    r = render_head(2, camera_label(180, 0), 48)
    counts = np.bincount(r.parts.ravel(), minlength=len(PART))
    assert counts[PART["hair"]] > counts[PART["skin"]] and counts[PART["eye"]] == 0


def test_expressions_change_the_face():
    idt = Identity.sample(1)
    label = camera_label(0, 0)
    neutral = render_head(idt, label, 96, Expression())
    talking = render_head(idt, label, 96, Expression(mouth_open=1.0))
    closed = render_head(idt, label, 96, Expression(eyes_closed=1.0))
    assert (talking.parts == PART["mouth"]).sum() + (talking.parts == PART["teeth"]).sum() > 3 * max(1, (neutral.parts == PART["mouth"]).sum())
    assert (neutral.parts == PART["eye"]).sum() > 20 and (closed.parts == PART["eye"]).sum() == 0
    raised = render_head(idt, label, 96, Expression(brows=1.0))
    rows = lambda r: np.nonzero(r.parts == PART["brow"])[0].mean()
    assert rows(raised) < rows(neutral) - 0.5  # brows go up the image


def test_mask_background_and_sizes():
    idt = Identity.sample(6)
    for res in (16, 40, 200):
        r = render_head(idt, camera_label(10, 0), res)
        assert r.image.shape == (res, res, 3) and r.mask.shape == (res, res) and r.parts.shape == (res, res)
        assert np.all(np.isfinite(r.depth[r.mask == 1])) and np.all(np.isinf(r.depth[r.mask == 0]))
    # pure background pixels are exactly the backdrop gradient
    r = render_head(idt, camera_label(10, 0), 40, ssaa=1)
    u = (torch.arange(40) + 0.5) / 40
    vv, uu = [g.reshape(-1) for g in torch.meshgrid(u, u, indexing="ij")]
    bg = (to_srgb(background(idt, uu, vv)).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy().reshape(40, 40, 3)
    assert np.array_equal(r.image[r.mask == 0], bg[r.mask == 0])
    assert set(np.unique(r.mask)) == {0.0, 1.0}


def test_light_changes_shading_not_geometry():
    scene = build_scene(Identity.sample(8), Expression())
    label = camera_label(0, 0)
    left = render_scene(scene, label, 48, light=(-1.0, 0.3))
    right = render_scene(scene, label, 48, light=(1.0, 0.3))
    assert np.array_equal(left.mask, right.mask) and np.array_equal(left.parts, right.parts)
    lum = lambda r: r.image.astype(float).mean(-1)[r.parts == PART["skin"]]
    cols = np.nonzero(left.parts == PART["skin"])[1]
    # light from the subject's right (-x) brightens the image-left side of the face
    assert lum(left)[cols < 24].mean() > lum(right)[cols < 24].mean() + 10


def test_clay_draws_the_shape_alone():
    """The clay style (a camera carrier whose colours cannot be misread): the same geometry as the colour render
    (mask and depth bitwise), grey everywhere, a flat backdrop, and nothing of the identity's colours or light;
    another head shape still changes it."""
    from dataclasses import replace

    from diffportrait3d.head.shading import CLAY_BACKDROP

    idt = Identity.sample(2)
    recoloured = replace(idt, skin=(0.3, 0.2, 0.1), hair_colour=(0.9, 0.1, 0.1), lip_tint=(0.1, 0.9, 0.1),
                         iris=(0.9, 0.9, 0.1), clothes=(0.1, 0.1, 0.9), background_top=(1.0, 1.0, 0.0),
                         background_bottom=(0.0, 1.0, 1.0), light_azimuth=-1.0, light_elevation=0.1, ambient=0.45)
    label = camera_label(30, 5)
    colour, clay = render_head(idt, label, 48), render_head(idt, label, 48, style="clay")
    assert np.array_equal(clay.mask, colour.mask) and np.array_equal(clay.depth, colour.depth)
    assert np.array_equal(clay.image, render_head(recoloured, label, 48, style="clay").image)
    assert not np.array_equal(colour.image, render_head(recoloured, label, 48).image)  # the colours did change
    img = clay.image.astype(int)
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])  # grey
    assert np.all(img[clay.mask == 0] == round(CLAY_BACKDROP[0] * 255))
    assert img[clay.mask == 1].std() > 15  # shaded, not a silhouette
    other = render_head(Identity.sample(6), label, 48, style="clay")
    assert np.abs(other.image.astype(int) - img).mean() > 3
    with pytest.raises(ValueError, match="style"):
        render_head(idt, label, 48, style="plastic")

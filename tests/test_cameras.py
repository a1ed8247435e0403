"""EG3D camera labels, look-at poses, projection and trajectories."""

import json
import math

import numpy as np
import pytest
import torch

from diffportrait3d.cameras import (FOCAL, LOOKAT, RADIUS, camera_label, camera_origin, from_eg3d_angles,
                                               label_to_angles, look_at, pixel_rays, project, split_label)
from diffportrait3d.cameras import eg3d_torch
from diffportrait3d.cameras.trajectories import load_trajectory, make_trajectory, parse_range
from diffportrait3d.errors import UserError

torch.set_num_threads(1)


def eg3d_lookat_sample(h, v, lookat, radius):
    """EG3D's LookAtPoseSampler.sample + create_cam2world_matrix, transcribed with the stddevs at 0."""
    theta, phi = h, math.acos(1 - 2 * (v / math.pi))
    origin = np.array([radius * math.sin(phi) * math.cos(math.pi - theta), radius * math.cos(phi),
                       radius * math.sin(phi) * math.sin(math.pi - theta)])
    f = np.asarray(lookat) - origin
    f /= np.linalg.norm(f)
    right = -np.cross([0, 1, 0], f)
    right /= np.linalg.norm(right)
    up = np.cross(f, right)
    up /= np.linalg.norm(up)
    m = np.eye(4)
    m[:3, :3] = np.stack([right, up, f], axis=-1)
    m[:3, 3] = origin
    return m


@pytest.mark.parametrize("yaw", [-170, -90, -45, 0, 10, 60, 90, 180])
@pytest.mark.parametrize("pitch", [-60, -20, 0, 15, 45])
def test_look_at_is_orthonormal_and_centred(yaw, pitch):
    label = camera_label(yaw, pitch, 2.3)
    c2w, k = split_label(label)
    r = c2w[:3, :3]
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(c2w[3], [0, 0, 0, 1])
    centre = c2w[:3, 3]
    assert np.linalg.norm(centre) == pytest.approx(2.3, abs=1e-12)
    azimuth = math.atan2(centre[0], centre[2])
    assert np.allclose([math.sin(azimuth), math.cos(azimuth)], [math.sin(math.radians(yaw)), math.cos(math.radians(yaw))], atol=1e-12)
    assert math.degrees(math.asin(centre[1] / 2.3)) == pytest.approx(pitch, abs=1e-9)
    # the optical axis points at the look-at point, and the image y axis points down the world
    forward = np.asarray(LOOKAT) - centre
    assert np.allclose(r[:, 2], forward / np.linalg.norm(forward), atol=1e-12)
    assert r[1, 1] < 0
    assert np.allclose(k, [[FOCAL, 0, 0.5], [0, FOCAL, 0.5], [0, 0, 1]])


def test_label_round_trip_is_exact():
    rng = np.random.default_rng(0)
    for yaw, pitch, radius in zip(rng.uniform(-179, 179, 200), rng.uniform(-85, 85, 200), rng.uniform(0.5, 5, 200)):
        y, p, r = label_to_angles(camera_label(yaw, pitch, radius))
        assert abs(y - yaw) < 1e-6 and abs(p - pitch) < 1e-6 and abs(r - radius) < 1e-6
    labels = np.stack([camera_label(a, b) for a, b in [(10, 5), (-30, -12)]])
    yaws, pitches, radii = label_to_angles(labels)
    assert np.allclose(yaws, [10, -30], atol=1e-9) and np.allclose(pitches, [5, -12], atol=1e-9) and np.allclose(radii, RADIUS)


def test_matches_eg3d_lookat_sampler():
    for yaw, pitch in [(0, 0), (25, 10), (-70, -15), (90, 30)]:
        phi = math.pi / 2 - math.radians(pitch)
        v = math.pi * (1 - math.cos(phi)) / 2  # EG3D's vertical parameter for this elevation
        ours = camera_label(yaw, pitch)[:16].reshape(4, 4)
        theirs = eg3d_lookat_sample(math.pi / 2 + math.radians(yaw), v, LOOKAT, RADIUS)
        assert np.abs(ours - theirs).max() < 1e-9
        assert np.allclose(from_eg3d_angles(math.pi / 2 + math.radians(yaw), v), (yaw, pitch), atol=1e-9)


def test_frontal_camera_layout():
    label = camera_label(0, 0)
    assert np.allclose(label[[3, 7, 11]], [0, 0, RADIUS])  # row-major: translation in column 3
    c2w, _ = split_label(label)
    assert np.allclose(c2w[:3, 0], [1, 0, 0]) and np.allclose(c2w[:3, 1], [0, -1, 0])
    assert np.allclose(project(np.array(LOOKAT), label, 64), [32, 32])
    # positive yaw puts the camera on the subject's left (+x)
    assert camera_origin(30, 0)[0] > 0


def test_project_inverts_pixel_rays():
    label = camera_label(37, -12)
    origin, dirs = pixel_rays(label, 16)
    for i, j in [(0, 0), (3, 11), (15, 7)]:
        point = origin + 2.5 * dirs[i, j]
        assert np.allclose(project(point, label, 16), [j + 0.5, i + 0.5], atol=1e-9)



# -- the torch twin (cameras/eg3d_torch.py) agrees with the numpy conventions ----------------------
def torch_labels(*angles, **kw) -> torch.Tensor:
    return torch.stack([torch.tensor(camera_label(y, p, **kw), dtype=torch.float32) for y, p in angles])


def test_torch_rays_pass_through_lookat_and_match_pixel_rays():
    lab = torch_labels((0, 0), (25, 10), (-60, -20), (170, 5))
    origin, d = eg3d_torch.rays(lab, torch.tensor([0.5, 0.5]))
    to_lookat = torch.tensor(LOOKAT, dtype=torch.float64) - origin
    miss = torch.linalg.cross(to_lookat, d).norm(dim=-1)  # distance of the look-at point from the ray
    assert miss.max() < 1e-5
    assert ((to_lookat * d).sum(-1) > 2).all()  # in front of the camera, about 2.5 away
    for i in range(len(lab)):
        o_ref, d_ref = pixel_rays(lab[i].double().numpy(), 8)
        o, d = eg3d_torch.rays(lab[i:i + 1], eg3d_torch.pixel_uv(8, 8))
        np.testing.assert_allclose(o[0].numpy(), o_ref, atol=1e-6)
        np.testing.assert_allclose(d[0].numpy(), d_ref, atol=1e-6)


def test_torch_project_matches_numpy_project():
    rng = np.random.default_rng(0)
    points = rng.normal(0, 0.2, (10, 3)) + np.array(LOOKAT)
    for yaw, pitch in [(0, 0), (37, -12), (-75, 30)]:
        label = camera_label(yaw, pitch)
        w2c, k = eg3d_torch.camera_tensors(label, dtype=torch.float64)
        np.testing.assert_allclose(w2c.numpy(), np.linalg.inv(split_label(label)[0]), atol=1e-12)
        cam = torch.from_numpy(points) @ w2c[:3, :3].T + w2c[:3, 3]
        uvz = eg3d_torch.project(cam[None], k[None])[0]
        np.testing.assert_allclose(uvz[:, :2].numpy(), project(points, label), atol=1e-12)
        np.testing.assert_allclose(eg3d_torch.unproject(uvz[:, :2], k[None])[0].numpy() * uvz[:, 2:].numpy(), cam.numpy(),
                                   atol=1e-12)


def test_viewing_angle_is_the_angle_between_orbit_cameras():
    # looking at the world origin, a camera's viewing direction is minus its centre's direction, so the
    # angle between two views is the angle between the cameras' centres (camera_origin, numpy)
    angles = [(0, 0), (30, 0), (-70, 10), (120, -25), (180, 40)]
    labels = torch_labels(*angles, lookat=(0.0, 0.0, 0.0))
    origins = camera_origin(*np.array(angles, float).T)
    cos = origins @ origins.T / RADIUS**2
    expected = np.degrees(np.arccos(np.clip(cos, -1, 1)))  # (targets, references)
    got = eg3d_torch.viewing_angle(labels[None], labels)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-3)
    np.testing.assert_allclose(got[1, 0].item(), 30.0, atol=1e-3)
    # and the direction itself is the unit vector from the camera to the look-at point
    direction = eg3d_torch.viewing_direction(torch_labels((25, 10)))[0].numpy()
    towards = np.array(LOOKAT) - camera_origin(25, 10)
    np.testing.assert_allclose(direction, towards / np.linalg.norm(towards), atol=1e-6)


def test_bad_labels_and_pitch():
    with pytest.raises(UserError):
        split_label([0.0] * 24)
    with pytest.raises(UserError):
        camera_label(0, 90)
    with pytest.raises(UserError):
        look_at([0, 3, 0], [0, 0, 0])


def test_trajectories():
    orbit = make_trajectory("-40:40", "5", 9, "orbit")
    assert len(orbit) == 9 and orbit.labels.shape == (9, 25)
    assert np.allclose(orbit.yaw, np.linspace(-40, 40, 9)) and np.allclose(orbit.pitch, 5)
    assert np.allclose(label_to_angles(orbit.labels)[0], orbit.yaw, atol=1e-9)
    nod = make_trajectory("10", "-10:20", 4, "nod")
    assert np.allclose(nod.yaw, 10) and np.allclose(nod.pitch, [-10, 0, 10, 20])
    spiral = make_trajectory("-30:30", "-10:10", 17, "spiral")
    assert np.all(np.diff(spiral.yaw) > 0)
    assert spiral.pitch.max() == pytest.approx(10) and spiral.pitch.min() == pytest.approx(-10)
    bounce = make_trajectory("-40:40", "0", 8, "bounce")
    assert np.allclose(bounce.yaw, [-40, -20, 0, 20, 40, 20, 0, -20])  # closed: the next view would be the first
    one = make_trajectory("15", "0", 1, "orbit")
    assert np.allclose(one.yaw, [15])
    assert parse_range("-40:40") == (-40, 40) and parse_range("7") == (7, 7) and parse_range(3) == (3, 3)
    for bad in ["a:b", "1:2:3", ""]:
        with pytest.raises(UserError):
            parse_range(bad)
    with pytest.raises(UserError):
        make_trajectory("0", "0", 0, "orbit")
    with pytest.raises(UserError):
        make_trajectory("0", "0", 4, "zigzag")


def test_trajectory_files(tmp_path):
    forms = {
        "pairs.json": [[-20, 0], [0, 5], [20, 0, 2.5]],
        "dicts.json": {"views": [{"yaw": -20}, {"yaw": 0, "pitch": 5}, {"yaw": 20, "radius": 2.5}]},
        "labels.json": [list(camera_label(-20, 0)), list(camera_label(0, 5)), list(camera_label(20, 0, 2.5))],
        "dataset.json": {"labels": [["a.png", list(camera_label(-20, 0))], ["b.png", list(camera_label(0, 5))],
                                    ["c.png", list(camera_label(20, 0, 2.5))]]},
    }
    for name, data in forms.items():
        (tmp_path / name).write_text(json.dumps(data))
        traj = make_trajectory(path=str(tmp_path / name))
        assert np.allclose(traj.yaw, [-20, 0, 20], atol=1e-9), name
        assert np.allclose(traj.pitch, [0, 5, 0], atol=1e-9), name
        assert np.allclose(label_to_angles(traj.labels)[2], [RADIUS, RADIUS, 2.5]), name
    (tmp_path / "bad.json").write_text(json.dumps([[0, "up"]]))
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "broken.json").write_text("[[0, 1]")
    for name in ["bad.json", "empty.json", "broken.json", "missing.json"]:
        with pytest.raises(UserError):
            load_trajectory(tmp_path / name)

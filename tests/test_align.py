"""EG3D alignment (idempotence, roll, no face), dp3d align end to end, head pose on renders at
known cameras with an open mouth, and --conditions VIDEO frame picking on a rendered head turn."""

import json

import numpy as np
import pytest
from PIL import Image

from diffportrait3d.cameras import FOCAL, camera_label, label_to_angles
from diffportrait3d.errors import UserError
from diffportrait3d.faces.align import align_face
from diffportrait3d.faces.crop import align_portrait, crop_face
from diffportrait3d.faces.pose import camera_from_pose, head_pose, pose_of_label
from diffportrait3d.head import Expression, Identity, build_scene, render_scene
from diffportrait3d.media import save_video
from metrics_helpers import astronaut, grace_hopper

pytest.importorskip("dlib")
FULL = np.array([[0, 0], [0, 1], [1, 1], [1, 0]], float)
VIDEO_YAWS = [-30, -15, 0, 15, 30]


@pytest.fixture(scope="module")
def head_turn():
    """An open-mouthed procedural head at VIDEO_YAWS (pitch 5), 192 px: (images, labels)."""
    scene = build_scene(Identity.sample(3), Expression(mouth_open=1.0, smile=0.3))
    labels = [camera_label(y, 5) for y in VIDEO_YAWS]
    return [render_scene(scene, lab, 192).pil() for lab in labels], labels


def test_alignment_runs_hog_once_per_turn_before_the_cnn_fallback(monkeypatch):
    """HOG looks at the image in 4 turns, then the CNN detector alone: HOG must not rerun on the upright image."""
    from diffportrait3d.faces.dlib_models import dlib_faces

    faces, calls = dlib_faces(), []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def run(self, image, *args):
            calls.append(image.shape)
            return self.inner.run(image, *args)

    monkeypatch.setattr(faces, "detector", Counting(faces.detector))
    with pytest.raises(UserError, match="no face found"):
        align_face(Image.new("RGB", (200, 150), (128, 128, 128)))
    assert calls == [(150, 200, 3), (200, 150, 3), (200, 150, 3), (150, 200, 3)]


@pytest.mark.parametrize("photo", [astronaut, grace_hopper])
def test_aligning_an_aligned_image_returns_it(photo):
    aligned = align_portrait(Image.fromarray(photo()), 512).image
    again = align_face(aligned)
    err = np.abs(again.quad / 512 - FULL).max()
    print(f"{photo.__name__}: crop box of the aligned image off by {err:.4f} of its side")
    assert err < 0.02  # measured 0.010 (astronaut)


def test_alignment_undoes_roll_and_frames_like_eg3d():
    img = Image.fromarray(astronaut())
    base = align_face(img)
    turned = align_face(img.rotate(25, resample=Image.BICUBIC))  # counter-clockwise
    assert turned.roll - base.roll == pytest.approx(25, abs=2)
    assert turned.side == pytest.approx(base.side, rel=0.03)
    crop = align_portrait(img, 256).image
    from diffportrait3d.faces.dlib_models import dlib_faces

    box = dlib_faces().detect(np.asarray(crop))
    assert box.width() / 256 == pytest.approx(0.63, abs=0.05)  # EG3D renders: 0.63 (measured here 0.629)


def test_no_face_is_a_clear_error_when_alignment_is_asked_for():
    blank = Image.new("RGB", (200, 150), (128, 128, 128))
    with pytest.raises(UserError, match="no face found in blank.png.*pass --crop none"):
        crop_face(blank, "align", name="blank.png")
    used = crop_face(blank, "auto", name="blank.png")  # the default uses it as it is, and says so
    assert used.image.size == (150, 150) and used.label is None
    assert used.note == "blank.png: centre-cropped to 150x150 (no face found; --crop align requires one)"
    with pytest.raises(UserError, match="--crop must be one of"):
        crop_face(Image.new("RGB", (20, 20)), "sideways")
    photo = Image.new("RGB", (8, 8))
    assert crop_face(photo, "none").image is photo and crop_face(photo, "none").label is None


def test_default_crop_passes_aligned_squares_through_and_aligns_other_photos():
    """auto: an EG3D-framed square (an aligned photo, a procedural head rendered at an EG3D camera, a 64-px
    head of the miniature world) is the very same image, camera unknown as with none; a photo is aligned."""
    photo = Image.fromarray(astronaut())
    aligned = align_portrait(photo, 256)
    head = render_scene(build_scene(Identity.sample(7), Expression()), camera_label(20, 0), 256).pil()
    small = render_scene(build_scene(Identity.sample(3), Expression()), camera_label(-30, 0), 64).pil()
    for img, why in ((aligned.image, "already aligned"), (head, "already aligned"), (small, "under 128 px")):
        got = crop_face(img, name="x.png")
        assert got.image is img and got.label is None and got.note.startswith(f"x.png: used as is ({why}"), got.note
    done = crop_face(photo, name="astronaut.png")  # the whole photo: the face is a quarter of it
    assert done.note.startswith("astronaut.png: aligned: face found, yaw ")
    assert np.array_equal(np.asarray(done.image), np.asarray(align_portrait(photo, 512).image))
    assert np.array_equal(done.label, aligned.label)
    # a 4:3 photo of the same face is aligned to the same crop: not squashed, not framed differently
    wide = Image.fromarray(np.pad(astronaut(), ((0, 0), (85, 85), (0, 0)), mode="edge"))
    assert abs(np.asarray(crop_face(wide).image, float) - np.asarray(done.image, float)).mean() < 1  # measured 0.0


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_a_photo_turned_without_an_exif_tag_is_still_aligned_upright(turn):
    """A face on its side or upside down (a photo turned by an editor that dropped the tag): found in the
    turned image, and its crop and camera are the upright photo's."""
    photo = Image.fromarray(astronaut())
    upright = align_portrait(photo, 256)
    got = align_portrait(photo.rotate(turn, expand=True), 256)
    assert got.alignment.turned == (360 - turn) % 360 and f"turned {got.alignment.turned} degrees" in got.note
    assert np.abs(np.asarray(got.image, float) - np.asarray(upright.image, float)).mean() < 1  # measured 0.01-0.02
    assert abs(label_to_angles(got.label)[0] - label_to_angles(upright.label)[0]) < 1.0


def test_camera_from_pose_inverts_pose_of_label():
    for yaw, pitch in [(0, 0), (30, 10), (-45, -20), (60, 25)]:
        lab = camera_from_pose(*pose_of_label(camera_label(yaw, pitch)))
        assert label_to_angles(lab)[:2] == pytest.approx((yaw, pitch), abs=1e-6)


def test_head_pose_on_renders_with_an_open_mouth(head_turn):
    images, labels = head_turn
    errs = []
    for im, lab in zip(images, labels):
        from diffportrait3d.faces.dlib_models import dlib_faces

        lm = dlib_faces().landmarks(np.asarray(im), cnn=True)
        assert lm is not None
        errs.append(np.subtract(head_pose(lm, 192, 192, FOCAL * 192), pose_of_label(lab)))
    errs = np.abs(errs)
    print("yaw errors", errs[:, 1].round(1), "pitch errors", errs[:, 0].round(1))
    assert errs[:, 1].max() < 15  # no mirrored solution (that reads 20-25 degrees off)


def test_video_frames_picked_by_head_pose(tmp_path, head_turn):
    from diffportrait3d.conditions.sources import load_conditions
    from diffportrait3d.conditions.video import pick_frames

    images, _ = head_turn
    order = [3, 0, 4, 1, 2]  # shuffled: picking must not rely on frame order
    wanted = [-30, 0, 30]
    picked = pick_frames([images[i] for i in order], [camera_label(y, 5) for y in wanted], 64)
    true_yaw = np.array([VIDEO_YAWS[order[i]] for i in picked.frame_index])
    print("picked frames' true yaw", true_yaw, "estimated-vs-requested distance", picked.angle_error.round(1))
    assert np.abs(true_yaw - wanted).max() <= 15  # measured: -15, 0, 30 (the -15 frame reads yaw -26.7)
    assert true_yaw[0] < 0 == true_yaw[1] < true_yaw[2]
    save_video(images, tmp_path / "turn.mp4", fps=5)
    conds, labels = load_conditions(tmp_path / "turn.mp4", 3, 64, yaw="-30:30", pitch="0")
    assert len(conds) == 3 and conds[0].size == (64, 64) and labels.shape == (3, 25)
    assert np.diff(label_to_angles(labels)[0]).min() > 0  # yaws increase along the orbit


def test_dp3d_align_end_to_end(tmp_path):
    from diffportrait3d.cli.main import main
    from diffportrait3d.data.eg3d_index import EG3DIndex

    a = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut()).save(a)
    b = tmp_path / "mirror.png"
    Image.fromarray(np.ascontiguousarray(astronaut()[:, ::-1])).save(b)
    out = tmp_path / "aligned"
    assert main(["align", str(a), str(b), "-o", str(out), "--size", "256"]) == 0
    meta = json.loads((out / "dataset.json").read_text())["labels"]
    assert [m[0] for m in meta] == ["astronaut.png", "mirror.png"]
    assert Image.open(out / "astronaut.png").size == (256, 256)
    yaws = [label_to_angles(m[1])[0] for m in meta]
    assert yaws[0] == pytest.approx(-yaws[1], abs=3)  # the mirror image sees the mirrored camera
    assert len(EG3DIndex(out).views) == 2
    # refuses to write into a folder that holds something, and says so in one line
    assert main(["align", str(a), "-o", str(out)]) == 2
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64)).save(blank)
    assert main(["align", str(blank), "-o", str(tmp_path / "x")]) == 2 and not (tmp_path / "x").exists()


def test_a_phone_photo_tagged_rotate_90_aligns_like_the_upright_one(tmp_path):
    """Phones store the sensor's pixels and tag EXIF Orientation 6 ("rotate 90 clockwise to view"):
    read through dp3d align, the tagged photo gives the upright photo's crop and camera."""
    from diffportrait3d.cli.main import main

    upright = Image.fromarray(astronaut())
    upright.save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.rotate(90, expand=True).save(tmp_path / "phone.jpg", quality=95, exif=exif)  # stored turned counter-clockwise
    for name in ("upright", "phone"):
        assert main(["align", str(tmp_path / f"{name}.jpg"), "-o", str(tmp_path / f"out_{name}"), "--size", "256"]) == 0
    a, b = (np.asarray(Image.open(tmp_path / f"out_{n}" / f"{n}.png"), np.float32) for n in ("upright", "phone"))
    assert np.abs(a - b).mean() < 8.0  # measured 5.0: JPEG of turned vs upright pixels, landmark noise (the untagged read is sideways)
    (_, la), (_, lb) = (json.loads((tmp_path / f"out_{n}" / "dataset.json").read_text())["labels"][0] for n in ("upright", "phone"))
    ya, yb = label_to_angles(np.array(la))[0], label_to_angles(np.array(lb))[0]
    assert abs(ya - yb) < 1.0, (ya, yb)


def test_crop_none_centre_crops_instead_of_stretching():
    """A 4:3 photo with a round face: the square the model gets keeps the face round."""
    from diffportrait3d.media import image_to_tensor

    yy, xx = np.mgrid[:300, :400]
    disc = ((xx - 200) ** 2 + (yy - 150) ** 2 < 80**2)
    img = Image.fromarray(np.where(disc[..., None], 255, 30).astype(np.uint8).repeat(3, 2))
    square = crop_face(img, "none").image
    assert square.size == (300, 300)
    x = image_to_tensor(square, 64)[0] > 0
    rows, cols = x.any(1).nonzero(), x.any(0).nonzero()
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(int(height) - int(width)) <= 1  # stretched to 64x64 it would be 4:3

"""dp3d synth and the EG3D-layout readers: layout, resume, grouping, conditions, bad files."""

import argparse
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.cli import synth as synth_cli
from diffportrait3d.cameras import camera_label, label_to_angles
from diffportrait3d.head import Expression, Identity, render_head
from diffportrait3d.data.eg3d_dataset import PairDataset, ViewGroupDataset
from diffportrait3d.data.eg3d_index import EG3DIndex, default_group
from diffportrait3d.data.synth import SynthConfig, synth
from diffportrait3d.errors import UserError

torch.set_num_threads(1)
CFG = SynthConfig(subjects=3, frames=2, views=3, res=32, seed=1)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synth(out, CFG, progress=False)
    return out


def test_synth_layout(synth_dir):
    labels = json.loads((synth_dir / "dataset.json").read_text())["labels"]
    assert len(labels) == 3 * 2 * 3
    assert labels[0][0] == "subject0000/frame00/cam00.png" and len(labels[0][1]) == 25
    for rel, label in labels:
        img = Image.open(synth_dir / rel)
        assert img.size == (32, 32) and img.mode == "RGB"
        yaw, pitch, radius = label_to_angles(label)
        assert abs(yaw) <= 90 and abs(pitch) <= 20 and radius == pytest.approx(2.7)
    subjects = json.loads((synth_dir / "subjects.json").read_text())
    assert sorted(subjects) == ["subject0000", "subject0001", "subject0002"]
    seeds = {s["identity_seed"] for s in subjects.values()}
    assert len(seeds) == 3
    assert subjects["subject0000"]["frames"][0]["expression"]["mouth_open"] == 0  # frame 0 is neutral
    assert not list(synth_dir.glob(".*part*"))


def test_subjects_json_re_renders_the_images(synth_dir):
    plan = json.loads((synth_dir / "subjects.json").read_text())["subject0002"]
    frame = plan["frames"][1]
    identity = Identity.from_dict(plan["identity"])
    assert identity == Identity.sample(plan["identity_seed"])
    yaw, pitch = frame["cameras"][2]
    r = render_head(identity, camera_label(yaw, pitch), 32, Expression(**frame["expression"]), light=tuple(frame["light"]))
    assert np.array_equal(r.image, np.asarray(Image.open(synth_dir / "subject0002/frame01/cam02.png")))


def test_synth_resumes_and_checks_settings(synth_dir, tmp_path):
    before = (synth_dir / "dataset.json").read_text()
    keep = synth_dir / "subject0000" / "frame00" / "cam00.png"
    stamp = keep.stat().st_mtime_ns
    redo = synth_dir / "subject0001"
    old = (redo / "frame01" / "cam02.png").read_bytes()
    for p in sorted(redo.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    redo.rmdir()
    synth(synth_dir, CFG, progress=False)
    assert keep.stat().st_mtime_ns == stamp  # finished subjects are skipped
    assert (redo / "frame01" / "cam02.png").read_bytes() == old  # the redone one is identical
    assert (synth_dir / "dataset.json").read_text() == before
    with pytest.raises(UserError, match="other settings"):
        synth(synth_dir, SynthConfig(subjects=3, frames=2, views=3, res=48, seed=1), progress=False)


def test_synth_cli(tmp_path):
    parser = argparse.ArgumentParser()
    synth_cli.add_parser(parser.add_subparsers(), "synth")
    args = parser.parse_args(["synth", str(tmp_path / "d"), "--subjects", "2", "--views", "2", "--res", "24", "--rig"])
    args.func(args)
    labels = json.loads((tmp_path / "d" / "dataset.json").read_text())["labels"]
    assert len(labels) == 4
    assert np.allclose(labels[0][1], labels[2][1])  # --rig: subjects share cameras


def test_grouping_rule():
    assert default_group("subject0001/frame03/cam02.png") == ("subject0001", "frame03")
    assert default_group("nersemble/p017/frame12/cam_222200037.png") == ("nersemble/p017", "frame12")
    assert default_group("00000/img00000000.png") == ("00000", "0")
    assert default_group("img00000000.png") == ("img00000000", "0")


def test_pairs_from_synth(synth_dir):
    ds = PairDataset(synth_dir, res=32)
    assert len(ds) == 18
    item = ds[4]
    for key in ("reference", "target", "condition"):
        assert item[key].shape == (3, 32, 32) and item[key].dtype == torch.float32
        assert -1 <= item[key].min() and item[key].max() <= 1
    assert item["reference_label"].shape == (25,) and item["target_label"].shape == (25,)
    assert not torch.equal(item["reference_label"], item["target_label"])  # another camera ...
    group = ds.index.groups[(item["subject"], item["frame"])]
    assert {ds.index.views[v].subject for v in group} == {item["subject"]}  # ... of the same subject and frame
    # the condition is another identity at the target camera, not the target itself
    assert (item["condition"] - item["target"]).abs().mean() > 0.1
    again = ds[4]
    assert all(torch.equal(item[k], again[k]) for k in ("reference", "target", "condition"))
    ds.set_epoch(1)
    changed = [not torch.equal(ds[i]["condition"], PairDataset(synth_dir, res=32)[i]["condition"]) for i in range(3)]
    assert any(changed)
    loader = torch.utils.data.DataLoader(PairDataset(synth_dir, res=32, condition_source="none"), batch_size=4)
    batch = next(iter(loader))
    assert batch["target"].shape == (4, 3, 32, 32) and "condition" not in batch and len(batch["subject"]) == 4


def test_view_groups(synth_dir):
    ds = ViewGroupDataset(synth_dir, views=3, res=32)
    assert len(ds) == 6
    item = ds[0]
    assert item["targets"].shape == (3, 3, 32, 32) and item["conditions"].shape == (3, 3, 32, 32)
    assert item["target_labels"].shape == (3, 25)
    assert len({tuple(x.tolist()) for x in item["target_labels"]}) == 3  # three different cameras
    orders = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        orders.add(tuple(ds[0]["target_labels"][:, 3].tolist()))
    assert len(orders) > 1  # shuffled, not a fixed order
    with pytest.raises(UserError):
        ViewGroupDataset(synth_dir, views=4)


def write_eg3d_style(root, names):
    """A hand-written EG3D/PanoHead-style folder: flat 'bucket/imgXXXXXXXX.png' paths."""
    entries = []
    for k, rel in enumerate(names):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20), (10 * k, 100, 200)).save(root / rel)
        entries.append([rel, list(camera_label(-20 + 10 * k, 0))])
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))


def test_hand_written_eg3d_folder(tmp_path):
    write_eg3d_style(tmp_path, ["00000/img00000000.png", "00000/img00000001.png", "00001/img00000002.png",
                                "00001/img00000003.png", "00001/img00000004.png"])
    index = EG3DIndex(tmp_path)
    assert set(index.groups) == {("00000", "0"), ("00001", "0")}
    ds = PairDataset(tmp_path, res=16)
    assert len(ds) == 5
    item = ds[0]
    assert item["target"].shape == (3, 16, 16) and item["subject"] == "00000"
    ref = item["reference"][:, 0, 0]  # the other image of the bucket: colour (10, 100, 200)
    assert torch.allclose(ref, torch.tensor([10, 100, 200]) / 127.5 - 1, atol=1e-3)


def test_corrupt_and_missing_files_are_skipped(tmp_path):
    names = [f"s{s}/f0/c{c}.png" for s in range(2) for c in range(3)]
    write_eg3d_style(tmp_path, names)
    (tmp_path / names[1]).write_bytes(b"not a png")
    os.remove(tmp_path / names[4])
    ds = PairDataset(tmp_path, res=16, condition_source="none")
    assert len(ds.index.missing) == 1 and len(ds) == 5
    items = [ds[i] for i in range(len(ds))]  # never raises
    assert ds.bad_files == 2  # one missing, one unreadable
    assert all(it["target"].shape == (3, 16, 16) for it in items)
    with pytest.raises(UserError):
        EG3DIndex(tmp_path / "nowhere")


def test_rig_conditions(tmp_path):
    synth(tmp_path, SynthConfig(subjects=3, frames=1, views=2, res=24, rig=True), progress=False)
    ds = PairDataset(tmp_path, res=24, condition_source="rig")
    for i in range(len(ds)):
        item = ds[i]
        same_cam = [v for v in ds.index.same_camera(ds.targets[i])]
        assert same_cam and all(ds.index.views[v].subject != item["subject"] for v in same_cam)
        assert any(torch.equal(item["condition"], ds._image(v)) for v in same_cam)
    assert ds.rig_fallbacks == 0

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
    args = parser.parse_args(["synth", str(tmp_path / "d"), "--subjects", "2", "--views", "2", "--res", "24", "--rig",
                              "--carrier-style", "clay"])
    args.func(args)
    labels = json.loads((tmp_path / "d" / "dataset.json").read_text())["labels"]
    assert len(labels) == 4 and json.loads((tmp_path / "d" / "synth.json").read_text())["carrier_style"] == "clay"
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


def sweep_yaws(cfg, subjects=60):
    """(yaw, pitch) arrays of every frame of `subjects` subjects' plans (no rendering)."""
    from diffportrait3d.data.synth import subject_plan

    return [np.array(frame["cameras"]) for i in range(subjects) for frame in subject_plan(cfg, i)["frames"]]


@pytest.mark.parametrize("sweep, views", [(12, 9), (4, 9), (30, 8), (90, 3), (30, 10)])
def test_sweep_cameras_step_along_yaw(sweep, views):
    """Each frame: yaws ascending with one step drawn in [DEG/3, DEG], all within +-90; pitch within +-20
    and drifting slowly (linearly, over 2 x N(0, 2) degrees in all); steps spread over their range."""
    cfg = SynthConfig(views=views, frames=2, sweep=sweep)
    steps, drifts = [], []
    for cams in sweep_yaws(cfg):
        yaw, pitch = cams[:, 0], cams[:, 1]
        step = np.diff(yaw)
        assert (step > 0).all() and np.ptp(step) < 1e-9  # ascending, evenly
        assert sweep / 3 - 1e-9 <= step[0] <= sweep + 1e-9
        assert yaw.min() >= -90 and yaw.max() <= 90 + 1e-9
        assert np.abs(pitch).max() <= 20
        drifts.append(abs(pitch[-1] - pitch[0]))
        steps.append(step[0])
    # (30, 8), (30, 10): steps above 180 / (views - 1) do not fit and are squeezed to it, still >= DEG/3 (else refused)
    top = min(sweep, 180 / (views - 1))
    assert min(steps) < sweep / 3 + 0.2 * (top - sweep / 3) and max(steps) > top - 0.2 * (top - sweep / 3)
    assert max(drifts) < 16, max(drifts)  # 4 sigma; measured 9.7 at most over these 120 frames
    assert len({round(c[0, 0], 6) for c in sweep_yaws(cfg)}) > 40  # the sweeps start anywhere (squeezed ones at -90) ...
    assert min(c[0, 0] for c in sweep_yaws(cfg)) < -60 and max(c[-1, 0] for c in sweep_yaws(cfg)) > 60  # ... within +-90


def test_sweep_is_seeded_and_off_by_default():
    a = sweep_yaws(SynthConfig(views=5, sweep=12, seed=3), 5)
    assert all(np.array_equal(x, y) for x, y in zip(a, sweep_yaws(SynthConfig(views=5, sweep=12, seed=3), 5)))
    assert not any(np.array_equal(x, y) for x, y in zip(a, sweep_yaws(SynthConfig(views=5, sweep=12, seed=4), 5)))
    # sweep 0 draws cameras independently, as before the option existed: not sorted by yaw
    assert not all((np.diff(c[:, 0]) > 0).all() for c in sweep_yaws(SynthConfig(views=5), 20))
    rig = sweep_yaws(SynthConfig(views=5, sweep=12, rig=True), 3)  # a rig sweeps too, the same for every subject
    assert (np.diff(rig[0][:, 0]) > 0).all() and all(np.array_equal(rig[0], c) for c in rig)


def test_synth_cli_sweep(tmp_path, capsys):
    from cli_checks import run_bad

    out = tmp_path / "sweep"
    parser = argparse.ArgumentParser()
    synth_cli.add_parser(parser.add_subparsers(), "synth")
    args = parser.parse_args(["synth", str(out), "--subjects", "2", "--frames", "2", "--views", "4", "--res", "16", "--sweep", "12"])
    args.func(args)
    capsys.readouterr()  # its progress bar
    labels = json.loads((out / "dataset.json").read_text())["labels"]
    assert len(labels) == 16 and json.loads((out / "synth.json").read_text())["sweep"] == 12
    yaw, pitch, _ = label_to_angles(np.array([lab for _, lab in labels]))
    for frame in range(4):  # the dataset's labels, per frame in camera order: a sweep
        step = np.diff(yaw[4 * frame: 4 * frame + 4])
        assert ((step > 4 - 1e-6) & (step < 12 + 1e-6)).all() and np.ptp(step) < 1e-6, step
    assert np.abs(yaw).max() <= 90 and np.abs(pitch).max() <= 20 + 1e-6
    for bad, words in (("-1", ["--sweep -1.0", "from 0 to 90"]), ("100", ["--sweep 100.0", "from 0 to 90"]),
                       ("nan", ["--sweep nan"])):
        run_bad(capsys, ["synth", tmp_path / "bad", "--sweep", bad], *words)
    run_bad(capsys, ["synth", tmp_path / "bad", "--views", "8", "--sweep", "90"], "--sweep 90 with --views 8", "<= 77.1429")
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_sweep_settings_are_checked_on_resume(tmp_path):
    small = dict(subjects=1, frames=1, views=2, res=16)
    synth(tmp_path, SynthConfig(**small), progress=False)
    with pytest.raises(UserError, match="other settings"):
        synth(tmp_path, SynthConfig(**small, sweep=12), progress=False)
    # a dataset made before --sweep existed has no key: it resumes as sweep 0 (and only as that)
    meta = tmp_path / "synth.json"
    old = json.loads(meta.read_text())
    del old["sweep"]
    meta.write_text(json.dumps(old))
    before = (tmp_path / "dataset.json").read_text()
    synth(tmp_path, SynthConfig(**small), progress=False)
    assert (tmp_path / "dataset.json").read_text() == before
    with pytest.raises(UserError, match="other settings"):
        synth(tmp_path, SynthConfig(**small, sweep=12), progress=False)


def write_yaw_groups(root, yaws_per_subject):
    """Subjects whose views lie at the given yaws, written in the given (unsorted) order."""
    entries = []
    for s, yaws in enumerate(yaws_per_subject):
        for c, yaw in enumerate(yaws):
            rel = f"subject{s:04d}/frame00/cam{c:02d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (s * 40, c * 20, 100)).save(root / rel)
            entries.append([rel, list(camera_label(yaw, 0))])
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))


def test_ordered_view_groups(tmp_path):
    """ordered=True: V targets in yaw order (either direction), the reference one of V+1 views neighbouring
    in yaw (not a target when the group has more than V views); with exactly V views, every view is a
    target and the reference one of them."""
    V = 3
    write_yaw_groups(tmp_path, [[40, -70, 5, 80, -20, 60, -45], [30, -10, 70, -50, 0, 15], [10, -30, 50]])
    ds = ViewGroupDataset(tmp_path, views=V, res=8, condition_source="none", ordered=True)
    assert len(ds) == 3
    yaw = label_to_angles(ds.index.labels)[0]
    directions, windows, ref_places = set(), set(), set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            targets, ref = item["target_views"].tolist(), item["reference_view"]
            group = ds.index.groups[(item["subject"], item["frame"])]
            by_yaw = sorted(group, key=lambda v: yaw[v])
            step = np.diff(yaw[targets])
            assert (step > 0).all() or (step < 0).all(), yaw[targets]
            directions.add(bool(step[0] > 0))
            assert len(targets) == V and set(targets) <= set(group)
            assert torch.allclose(item["target_labels"], torch.tensor(ds.index.labels[targets], dtype=torch.float32))
            if len(group) > V:
                window = sorted(targets + [ref], key=lambda v: yaw[v])
                start = by_yaw.index(window[0])
                assert ref not in targets and window == by_yaw[start: start + V + 1]  # contiguous in yaw order
                windows.add((i, start))
                ref_places.add(window.index(ref))
            else:
                assert ref in targets and sorted(targets, key=lambda v: yaw[v]) == by_yaw
    assert directions == {True, False}
    assert ref_places == set(range(V + 1))  # the reference anywhere in the window, ends included
    assert len({w for w in windows if w[0] == 0}) > 2  # the window slides along the sweep
    # deterministic per (seed, index): a second reader agrees item by item, another seed does not
    def draws(d):
        return [(d[i]["target_views"].tolist(), d[i]["reference_view"]) for i in reversed(range(len(d)))]

    ds.set_epoch(0)
    again = ViewGroupDataset(tmp_path, views=V, res=8, condition_source="none", ordered=True)
    assert draws(ds) == draws(again) == draws(again)
    assert draws(ViewGroupDataset(tmp_path, views=V, res=8, condition_source="none", ordered=True, seed=1)) != draws(ds)


def test_clay_carriers_from_synth_and_from_the_renderer(tmp_path):
    """synth --carrier-style clay draws its condition images in clay (bitwise the renderer's), says so in
    synth.json, and a dataset asked for another style refuses them in one line; the "render" source draws clay."""
    small = SynthConfig(subjects=1, frames=1, views=2, res=24, seed=3, conditions=1, carrier_style="clay")
    synth(tmp_path / "d", small, progress=False)
    assert json.loads((tmp_path / "d" / "synth.json").read_text())["carrier_style"] == "clay"
    from diffportrait3d.cameras import RADIUS
    from diffportrait3d.data.synth import subject_plan

    yaw, pitch = subject_plan(small, 0)["frames"][0]["cameras"][1]
    seed = int(np.random.default_rng([3, 0, 0, 1, 0, 0xC0]).integers(2**31))
    want = render_head(Identity.sample(seed), camera_label(yaw, pitch, RADIUS), 24, expression=Expression.sample(seed), style="clay")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d/conditions/subject0000/frame00/cam01_0.png")), want.image)
    assert PairDataset(tmp_path / "d", res=24, condition_source="folder", carrier_style="clay")[0]["condition"].shape == (3, 24, 24)
    with pytest.raises(UserError, match="--carrier-style colour"):
        PairDataset(tmp_path / "d", res=24, condition_source="folder")
    with pytest.raises(UserError, match="carrier-style"):
        synth(tmp_path / "e", SynthConfig(subjects=1, views=2, res=24, carrier_style="plastic"), progress=False)
    cond = PairDataset(tmp_path / "d", res=24, condition_source="render", carrier_style="clay")[1]["condition"]
    assert torch.equal(cond[0], cond[1]) and torch.equal(cond[1], cond[2])  # grey: the clay style
    cond = PairDataset(tmp_path / "d", res=24, condition_source="render")[1]["condition"]
    assert not torch.equal(cond[0], cond[2])

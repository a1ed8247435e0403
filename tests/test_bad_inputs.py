"""Bad input as a new user gives it (issue 11): every case exits 2 with one line that names the
argument, before any model loads, and leaves every file that was there byte-identical.

Read-only output: the tests run as root in CI, where permission bits stop nothing. `readonly_dir`
makes a folder immutable with `chattr +i` (refuses root too), or uses chmod 555 when not root; where
neither works the read-only cases are skipped with the reason.
"""

import os
import shutil
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from diffportrait3d.atomic import atomic_folder
from diffportrait3d.cli.main import main
from diffportrait3d.errors import UserError
from diffportrait3d.pipeline.model_folder import SHIPPED
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
from diffportrait3d.preflight import check_output_file, check_output_folder

from cli_checks import run_bad

NO_MODEL = "/nonexistent/model"  # loading it would fail: a pre-flight error proves nothing was loaded


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def user(tmp_path):
    """A user's working folder: a reference, condition images, and precious files of their own."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "ref.png")
    (tmp_path / "conds").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "conds" / f"{i}.png")
    for d in ("precious", "precious2"):
        (tmp_path / d / "photos").mkdir(parents=True)
        (tmp_path / d / "thesis.txt").write_text("four years of work")
        (tmp_path / d / "photos" / "me.jpg").write_bytes(bytes(range(256)))
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "folder.mp4").mkdir()
    return tmp_path


@pytest.fixture()
def readonly_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    (d / "kept.txt").write_text("mine")
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0:
        yield d
        subprocess.run(["chattr", "-i", str(d)], check=True)
    else:  # a stand-in (e.g. a path under /sys) would test a missing folder, not a read-only one
        pytest.skip("cannot make a read-only folder as root here: chattr +i is missing or refused")


# -- 1. data loss --------------------------------------------------------------------------------

def test_render_into_a_folder_keeps_the_users_files_and_reruns_safely(user, tiny_model_dir, capsys):
    before = snapshot(user)
    args = ["render", user / "ref.png", "--model", tiny_model_dir, "--conditions", user / "conds", "--steps", "1",
            "-o", user / "precious"]
    for _ in range(2):  # the second run writes over its own output
        assert main([str(a) for a in args]) == 0
        after = snapshot(user)
        assert all(after[k] == v for k, v in before.items())
        written = sorted(set(after) - set(before))
        assert written == ["precious/contact_sheet.png", "precious/view_000.png", "precious/view_001.png"]
        assert not [p for p in user.rglob("*") if "partial" in p.name or ".part" in p.name]


def test_init_into_a_folder_keeps_the_users_files(user, capsys):
    before = snapshot(user)
    assert main(["init", "--preset", "tiny", "-o", str(user / "precious2")]) == 0
    after = snapshot(user)
    assert all(after[k] == v for k, v in before.items())
    assert "precious2/model_index.json" in after and "precious2/unet/diffusion_pytorch_model.safetensors" in after


def test_synth_into_a_folder_keeps_the_users_files(user, capsys):
    before = snapshot(user)
    assert main(["synth", str(user / "precious"), "--subjects", "1", "--views", "1", "--res", "16"]) == 0
    after = snapshot(user)
    assert all(after[k] == v for k, v in before.items())
    assert "precious/subject0000/frame00/cam00.png" in after and "precious/dataset.json" in after


def test_atomic_folder_keeps_other_files_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "mine.txt").write_text("mine")
    (out / "a.txt").write_text("old")
    with atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("new")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("b")
    assert snapshot(out) == {"a.txt": b"new", "sub/b.txt": b"b", "sub/mine.txt": b"mine"}
    before = snapshot(out)
    with pytest.raises(KeyboardInterrupt), atomic_folder(out) as tmp:  # Ctrl-C mid-write
        (tmp / "a.txt").write_text("half")
        raise KeyboardInterrupt
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["a.txt", "sub"]
    with pytest.raises(UserError, match="is in the way"), atomic_folder(out) as tmp:  # a folder where a file goes
        (tmp / "sub").write_text("x")
    assert snapshot(out) == before
    with pytest.raises(KeyboardInterrupt), atomic_folder(tmp_path / "fresh"):
        raise KeyboardInterrupt
    assert not (tmp_path / "fresh").exists()


def test_checkpoint_rotation_deletes_only_checkpoint_files(tmp_path):
    from diffportrait3d.training.checkpoint import list_checkpoints, save_checkpoint

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    root = tmp_path / "checkpoints"
    save_checkpoint(root, 1, net, opt, sched, keep_last=1)
    (root / "step-00000001" / "my_notes.txt").write_text("mine")
    save_checkpoint(root, 2, net, opt, sched, keep_last=1)
    assert [p.name for p in list_checkpoints(root)] == ["step-00000002"]
    assert snapshot(root / "step-00000001") == {"my_notes.txt": b"mine"}


def test_train_refuses_to_restart_over_an_earlier_runs_checkpoints(tmp_path, capsys):
    (tmp_path / "run" / "checkpoints" / "step-00000500").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step-00000500" / "meta.json").write_text("{}")
    before = snapshot(tmp_path)
    run_bad(capsys, ["train", "--stage", "base", "--data", tmp_path, "-o", tmp_path / "run"], "--resume", "step-00000500")
    assert snapshot(tmp_path) == before


# -- 2. outputs that cannot be written: found before any model loads -----------------------------

def output_cases(ro, user):
    r = ["render", user / "ref.png", "--model", NO_MODEL, "--conditions", user / "conds"]
    return [
        (r + ["-o", ro / "out.mp4"], ["cannot write"]),
        (r + ["-o", ro / "views"], ["cannot write"]),
        (r + ["-o", ro], ["cannot write"]),
        (r + ["-o", "."], ["-o .", "name the output"]),
        (r + ["-o", ".."], ["-o ..", "name the output"]),
        (r + ["-o", user / "afile"], ["a file of that name exists"]),
        (r + ["-o", user / "folder.mp4"], ["that is a folder"]),
        (r + ["-o", user / "afile" / "views"], ["is a file, not a folder"]),
        (["demo", "--model", NO_MODEL, "-o", ro / "demo"], ["cannot write"]),
        (["init", "--preset", "tiny", "-o", ro / "model"], ["cannot write"]),
        (["synth", ro / "data", "--subjects", "1"], ["OUT", "cannot write"]),
        (["train", "--stage", "base", "--data", user, "-o", ro / "run"], ["cannot write"]),
        (["evaluate", "--model", NO_MODEL, "--data", user, "-o", ro / "report"], ["cannot write"]),
        (["convert-official", user / "ref.png", "-o", ro / "converted"], ["cannot write"]),
        (["fetch-weights", ro / "weights"], ["DIR", "cannot write"]),
    ]


@pytest.mark.parametrize("case", range(15))
def test_unwritable_outputs_fail_first_with_one_line(case, user, readonly_dir, capsys, monkeypatch):
    monkeypatch.chdir(user)
    args, words = output_cases(readonly_dir, user)[case]
    before, ro_before = snapshot(user), snapshot(readonly_dir)
    assert ro_before  # the fixture's kept.txt: the folder is real and read-only, not a stand-in
    run_bad(capsys, args, *words)
    assert snapshot(user) == before
    assert snapshot(readonly_dir) == ro_before


def test_preflight_functions_work_without_the_cli(tmp_path):
    with pytest.raises(UserError, match="a file of that name"):
        check_output_folder(Path(__file__))
    with pytest.raises(UserError, match="needs about"):
        check_output_folder(tmp_path / "x", need_bytes=2**62)
    assert check_output_file(tmp_path / "new" / "a.mp4") == tmp_path / "new" / "a.mp4"
    assert not (tmp_path / "new").exists()  # a check creates nothing


# -- 3. numbers out of range -----------------------------------------------------------------

NUMBER_CASES = [
    (["render", "{ref}", "--steps", "0"], "--steps"), (["render", "{ref}", "--steps", "-1"], "--steps"),
    (["render", "{ref}", "--steps", "100000"], "--steps"), (["render", "{ref}", "--fps", "0"], "--fps"),
    (["render", "{ref}", "--views", "0"], "--views"), (["render", "{ref}", "--views", "1000000"], "--views"),
    (["render", "{ref}", "--guidance", "-1"], "--guidance"), (["render", "{ref}", "--guidance", "nan"], "--guidance"),
    (["render", "{ref}", "--eta", "2"], "--eta"), (["render", "{ref}", "--seed", "-1"], "--seed"),
    (["render", "{ref}", "--group", "0"], "--group"), (["render", "{ref}", "--steps", "two"], "--steps"),
    (["demo", "--steps", "0"], "--steps"), (["demo", "--views", "-4"], "--views"),
    (["synth", "{out}", "--subjects", "0"], "--subjects"), (["synth", "{out}", "--subjects", "-3"], "--subjects"),
    (["synth", "{out}", "--res", "8"], "--res"), (["synth", "{out}", "--res", "100000"], "--res"),
    (["synth", "{out}", "--workers", "0"], "--workers"), (["synth", "{out}", "--subjects", "1000000000"], "needs about"),
    (["train", "--stage", "base", "--data", "{user}", "--max-steps", "0"], "max_steps"),
    (["train", "--stage", "base", "--data", "{user}", "--batch-size", "-1"], "batch_size"),
    (["train", "--stage", "base", "--data", "{user}", "--lr", "-1"], "lr"),
    (["train", "--stage", "base", "--data", "{user}", "--lr", "0"], "lr 0"),
    (["train", "--stage", "base", "--data", "{user}", "--set", "keep_last=-1"], "keep_last"),
    (["train", "--stage", "base", "--data", "{user}", "--set", "views=100"], "views"),
    (["evaluate", "--data", "{user}", "--steps", "0"], "--steps"),
    (["evaluate", "--data", "{user}", "--pairs", "0"], "--pairs"),
    (["evaluate", "--data", "{user}", "--eta", "5"], "--eta"),
]


@pytest.mark.parametrize("args, word", NUMBER_CASES)
def test_numbers_out_of_range_exit_2_before_work(args, word, user, capsys, monkeypatch):
    monkeypatch.chdir(user)
    fmt = dict(ref=user / "ref.png", out=user / "precious", user=user)
    args = [a.format(**fmt) for a in args]
    if args[0] in ("render", "demo", "evaluate"):
        args += ["--model", NO_MODEL]
    if args[0] in ("render", "evaluate", "train"):
        args += ["-o", str(user / "out")]
    before = snapshot(user)
    run_bad(capsys, args, word)
    assert snapshot(user) == before


def test_input_sources_are_checked_first(user, capsys):
    frames = np.stack([np.full((64, 64, 3), 80 * i, np.uint8) for i in range(3)])
    iio.imwrite(user / "cams.gif", frames, extension=".gif")
    before = snapshot(user)
    r = ["render", user / "ref.png", "--model", NO_MODEL, "-o", user / "out"]
    run_bad(capsys, r + ["--conditions", user / "cams.gif", "--views", "5"], "--views 5", "only 3 frames")
    run_bad(capsys, r + ["--conditions", user / "conds", "--views", "5"], "--views 5", "every image")
    run_bad(capsys, r + ["--conditions", user / "nowhere"], "--conditions", "not found")
    run_bad(capsys, r + ["--proxy", user / "nowhere"], "--proxy", "not found")
    run_bad(capsys, ["train", "--stage", "base", "--data", user / "nowhere", "-o", user / "run"], "--data", "not found")
    assert snapshot(user) == before


# -- 4. broken model folders and hub ids -------------------------------------------------------

def break_unet_weights(m):
    (m / "unet" / "diffusion_pytorch_model.safetensors").unlink()


def break_noise_model(m):
    shutil.rmtree(m / "noise_model")


def break_index(m):
    (m / "model_index.json").write_text("{not json")


def break_scheduler(m):
    (m / "scheduler" / "scheduler_config.json").unlink()


@pytest.mark.parametrize("breaker, words", [
    (break_unet_weights, ["unet/diffusion_pytorch_model.safetensors is missing"]),
    (break_noise_model, ["noise_model/config.json is missing", '"noise_model": [null, null]']),
    (break_index, ["model_index.json is not valid JSON"]),
    (break_scheduler, ["scheduler/scheduler_config.json is missing"]),
])
def test_broken_model_folder_names_the_missing_file(breaker, words, user, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(SHIPPED["mini"], model)
    breaker(model)
    before = snapshot(tmp_path)
    run_bad(capsys, ["render", user / "ref.png", "--model", model, "--conditions", user / "conds", "-o", user / "out"], *words)
    assert snapshot(tmp_path) == before
    if breaker is not break_index:  # the same message from Python
        with pytest.raises(UserError, match=words[0].split()[0]):
            DiffPortrait3DPipeline.from_pretrained(model)


def test_failing_hub_id_says_why_in_one_line(user, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_bad(capsys, ["render", user / "ref.png", "--model", "nobody/no-such-model", "--conditions", user / "conds",
                     "-o", user / "out"], "nobody/no-such-model", "Hugging Face Hub", "local model folder")


# -- 5. the shipped model from Python, default noise, notes and help texts -----------------------

def test_from_pretrained_mini_and_default_noise_match_the_cli(user):
    pipe = DiffPortrait3DPipeline.from_pretrained("mini")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.noise_model is not None
    from diffportrait3d.conditions.sources import load_conditions

    conds, labels = load_conditions("render", 2, pipe.image_size, yaw="-30:30")

    def views(**kw):
        return pipe(user / "ref.png", conds, num_inference_steps=1, condition_labels=labels, output_type="pt",
                    generator=torch.Generator().manual_seed(0), **kw).images

    default, auto, gaussian = views(), views(proxy_images="auto"), views(proxy_images=None)
    assert torch.equal(default, auto)  # the API's default is the CLI's --proxy auto
    assert (default - gaussian).abs().max().item() > 1e-2


def test_mini_on_a_photo_prints_one_note(user, tmp_path, capsys):
    args = ["--model", "mini", "--conditions", str(user / "conds"), "--steps", "1", "-o", str(tmp_path / "v")]
    assert main(["render", str(user / "ref.png")] + args) == 0
    assert capsys.readouterr().err.count("note: the mini model knows only the procedural heads") == 1
    assert main(["synth", str(tmp_path / "data"), "--subjects", "1", "--views", "1"]) == 0
    capsys.readouterr()
    assert main(["render", str(tmp_path / "data" / "subject0000" / "frame00" / "cam00.png")] + args) == 0
    assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize("command, words, absent", [
    ("demo", ["docs/miniature.md"], ["DESIGN.md"]),
    ("init", ["tiny", "mini"], []),
    ("train", ["vae", "base", "reference", "view", "consistency", "noise3d"], []),
    ("render", ["--fps", "1..1000", "images are all used"], []),
])
def test_help_texts(command, words, absent, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(w in text for w in words) and not any(a in text for a in absent)

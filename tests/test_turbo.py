"""Turbo mode (issue 38): the distill stage (training/stages/distill.py) and the student's LCM sampling
(pipeline/turbo.py), on the tiny preset: the sampler against diffusers' LCMScheduler, the render against a loop
of the student run by hand, the teacher untouched by a student beside it, the folder's round trip, the one-line
errors of every front end, and the stage learning on a fixed validation batch."""

import copy
import csv
import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, LCMScheduler
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from cli_checks import run_bad
from diffportrait3d.app import RenderSettings
from diffportrait3d.app.render import mode_steps
from diffportrait3d.app.web import WebRenderer, web_choices
from diffportrait3d.cli.main import main
from diffportrait3d.errors import UserError
from diffportrait3d.models.denoiser import Networks
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
from diffportrait3d.pipeline.turbo import TurboConfig, turbo_scheduler
from diffportrait3d.pipeline.view_groups import ViewConditions, grouped_eps
from diffportrait3d.training.config import TrainConfig
from diffportrait3d.training.loop import train
from diffportrait3d.training.stages.distill import DistillOptions, DistillStage

from toy_data import ToySet

torch.set_num_threads(1)
V = 2
# not the defaults, so that the round trip and the render show they come from the folder
OPTIONS = DistillOptions(steps=3, guidance_scale=2.0, teacher_steps=25, method="consistency")


def lcm(config, teacher_steps=50) -> LCMScheduler:
    """diffusers' own LCMScheduler, configured as turbo_scheduler configures its subclass."""
    return LCMScheduler.from_config(config, original_inference_steps=teacher_steps, clip_sample=False, thresholding=False,
                                    timestep_scaling=10.0)


def inputs(seed=0, n=2):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 64, 64, generator=g) * 2 - 1, torch.rand(n, 3, 64, 64, generator=g) * 2 - 1


def render(pipe, mode, seed=0, **kw):
    ref, conds = inputs()
    return pipe(ref, conds, mode=mode, generator=torch.Generator().manual_seed(seed), group_size=V, output_type="latent",
                **kw).images


def states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def distilled(tiny_pipe, tmp_path_factory):
    """(folder, stage): the tiny model with a student that differs from its teacher (weights nudged with a fixed
    seed, as a few training steps would), exported as the stage exports it."""
    stage = DistillStage(copy.deepcopy(tiny_pipe), views=V, options=OPTIONS)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in stage.trained().parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    folder = tmp_path_factory.mktemp("distilled") / "model"
    stage.export(folder)
    return folder, stage


@pytest.fixture(scope="module")
def distilled_pipe(distilled):
    pipe = DiffPortrait3DPipeline.from_pretrained(distilled[0])
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("turbo_files")
    (d / "photos").mkdir()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    image.save(d / "ref.png")
    image.save(d / "photos" / "a.png")
    return d


# -- the sampler -------------------------------------------------------------------------------------------------
def test_lcm_step_noise_is_lcm_with_the_noise_it_would_draw(tiny_pipe):
    """Given as variance_noise the noise LCMScheduler draws from a generator, LCMStepNoise's step is LCMScheduler's
    bit for bit; the last step adds none (whatever noise is given); the grid is LCM's for 4 steps of 50. With
    variance_noise neither the generator passed nor the global RNG moves (as with DDIM's)."""
    ours, ref = turbo_scheduler(tiny_pipe.scheduler.config, TurboConfig()), lcm(tiny_pipe.scheduler.config)
    ours.set_timesteps(4)
    ref.set_timesteps(4)
    assert ours.timesteps.tolist() == ref.timesteps.tolist() == [999, 759, 499, 259]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    for k, t in enumerate(ref.timesteps):
        eps = torch.randn(x.shape, generator=g)
        want = ref.step(eps, t, x, generator=torch.Generator().manual_seed(k))
        last = k == len(ref.timesteps) - 1
        noise = torch.full_like(x, 1e3) if last else randn_tensor(x.shape, generator=torch.Generator().manual_seed(k))
        passed, global_state = torch.Generator().manual_seed(9), torch.get_rng_state()
        got = ours.step(eps, t, x, generator=passed, variance_noise=noise)
        assert torch.equal(got.denoised, want.denoised) and torch.equal(got.prev_sample, want.prev_sample), k
        assert torch.equal(passed.get_state(), torch.Generator().manual_seed(9).get_state())
        assert torch.equal(torch.get_rng_state(), global_state)
        assert torch.equal(got.prev_sample, got.denoised) == last, k
        x = want.prev_sample


def test_turbo_render_is_the_student_run_by_hand(distilled_pipe):
    """mode="turbo" on a distilled folder: the folder's 3 LCM steps of diffusers' LCMScheduler (the same generator
    draws x_T, then each step's noise) on the student's conditional eps, one backbone batch of the N views per step,
    the teacher's backbone never called and the guidance scale ignored (folded in): equal to the bit."""
    pipe = distilled_pipe
    calls = []
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: calls.append((name, args[0].shape[0])))
             for name, m in (("teacher", pipe.unet), ("student", pipe.turbo_unet))]
    try:
        out = render(pipe, "turbo", seed=3, guidance_scale=7.0)
    finally:
        for h in hooks:
            h.remove()
    assert calls == [("student", V)] * OPTIONS.steps

    ref, conds = inputs()
    student = Networks(pipe.turbo_unet, pipe.reference_unet, pipe.controlnet, pipe.turbo_view_modules, pipe.reference_position)
    with torch.no_grad():
        cond = ViewConditions(context=pipe.prompt_embedding(), ref_latents=pipe.encode(ref), control_images=conds,
                              guidance_scale=1.0)
        sched = lcm(pipe.scheduler.config, OPTIONS.teacher_steps)
        sched.set_timesteps(OPTIONS.steps)
        g = torch.Generator().manual_seed(3)
        x = randn_tensor(out.shape, generator=g)
        for t in sched.timesteps:
            x = sched.step(grouped_eps(student, x, t, cond, V), t, x, generator=g).prev_sample
    assert torch.equal(out, x)
    again, other = render(pipe, "turbo", seed=3), render(pipe, "turbo", seed=4)
    assert torch.equal(again, out) and (other - out).abs().mean() > 1e-2


def test_exact_mode_on_a_distilled_folder_is_the_teacher(tiny_pipe, distilled_pipe):
    """A student beside the teacher changes nothing outside turbo mode, to the bit (and the student does differ)."""
    assert not states_equal(distilled_pipe.turbo_unet, distilled_pipe.unet)
    for kw in (dict(num_inference_steps=2), dict(num_inference_steps=2, guidance_scale=1.0)):
        assert torch.equal(render(distilled_pipe, "exact", **kw), render(tiny_pipe, "exact", **kw)), kw
    assert (render(distilled_pipe, "turbo") - render(distilled_pipe, "exact", num_inference_steps=3)).abs().mean() > 1e-2


def test_the_folder_round_trips_the_student_and_its_turbo_config(distilled, distilled_pipe, tmp_path):
    folder, stage = distilled
    index = json.loads((folder / "model_index.json").read_text())
    assert index["turbo"] == {"steps": 3, "guidance_scale": 2.0, "teacher_steps": 25, "solver": "lcm"}
    assert (folder / "turbo_unet").is_dir() and (folder / "turbo_view_modules").is_dir()
    assert states_equal(distilled_pipe.turbo_unet, stage.pipe.turbo_unet)
    assert states_equal(distilled_pipe.turbo_view_modules, stage.pipe.turbo_view_modules)
    for name in ("unet", "reference_unet", "controlnet", "view_modules", "vae"):
        assert states_equal(getattr(distilled_pipe, name), getattr(stage.pipe, name)), name
    # and once more through save_pretrained: the same student, the same config
    distilled_pipe.save_pretrained(tmp_path / "again")
    again = DiffPortrait3DPipeline.from_pretrained(tmp_path / "again")
    assert again.config.turbo == distilled_pipe.config.turbo == index["turbo"]
    assert states_equal(again.turbo_unet, distilled_pipe.turbo_unet)
    assert states_equal(again.turbo_view_modules, distilled_pipe.turbo_view_modules)
    # the student's hooks are its own view modules', once (not also an orphaned copy's)
    hooks = lambda unet: sum(len(m._forward_hooks) for m in unet.modules())  # noqa: E731
    assert hooks(stage.pipe.turbo_unet) == hooks(stage.pipe.unet) == hooks(distilled_pipe.turbo_unet) > 0


# -- errors --------------------------------------------------------------------------------------------------------
def test_turbo_without_a_student_names_the_distill_stage(tiny_pipe, distilled_pipe):
    with pytest.raises(UserError) as e:
        render(tiny_pipe, "turbo")
    assert "--stage distill" in str(e.value) and len(str(e.value).splitlines()) == 1
    with pytest.raises(UserError, match=r"--steps 26: --mode turbo takes 1\.\.25 steps"):
        render(distilled_pipe, "turbo", num_inference_steps=26)


@pytest.mark.parametrize("command", ["render", "render-batch"])
def test_cli_turbo_on_a_folder_without_a_student_is_one_line(tiny_model_dir, files, tmp_path, capsys, command):
    source = files / ("ref.png" if command == "render" else "photos")
    run_bad(capsys, [command, source, "--model", tiny_model_dir, "--mode", "turbo", "--views", "2", "-o", tmp_path / "out"],
            "--mode turbo needs a distilled model folder", "--stage distill")
    assert not any((tmp_path / "out").glob("**/*.png"))


def test_cli_turbo_steps_beyond_the_teacher_grid_is_one_line(distilled, files, tmp_path, capsys):
    run_bad(capsys, ["render", files / "ref.png", "--model", distilled[0], "--mode", "turbo", "--views", "2", "--steps", "30",
                     "-o", tmp_path / "out"], "--steps 30", "1..25")


@pytest.mark.parametrize("command", ["render", "render-batch", "demo"])
def test_every_render_command_offers_turbo(capsys, command):
    assert main([command, "--help"]) == 0
    assert "{exact,fast,turbo," in capsys.readouterr().out


def test_web_page_offers_turbo_for_a_student_and_says_why_not_otherwise(tiny_pipe, distilled_pipe, files, tmp_path):
    assert web_choices(tiny_pipe)["mode"] == ("exact", "fast")
    assert web_choices(distilled_pipe)["mode"] == ("exact", "fast", "turbo")
    page = WebRenderer(tiny_pipe, RenderSettings(views=2, group=2), tmp_path)
    status = page.page(str(files / "ref.png"), page.settings(mode="turbo"))["status"]
    assert status.startswith("**Error:** mode turbo needs a distilled model folder"), status
    assert len(status.splitlines()) == 1 and "--mode " not in status and "Traceback" not in status  # the page's words
    assert mode_steps(RenderSettings(mode="turbo"), distilled_pipe) == 3  # the page's status and progress: the folder's


@pytest.mark.parametrize("entry, words", [({"steps": 0}, "need 1 <= steps"), ({"steps": 60}, "need 1 <= steps"),
                                          ({"steps": 2.5}, "whole numbers"), ({"steps": 4, "speed": 9}, "speed"),
                                          ({"solver": "euler"}, "solver one of lcm, ddim"),
                                          ("fast", "bad \"turbo\" entry")])
def test_a_bad_turbo_entry_fails_at_load_in_one_line(tiny_pipe, tiny_model_dir, files, tmp_path, capsys, entry, words):
    """From a folder (before any weights load: model_folder.py) and from components, as a ColourPull entry does."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "turbo": entry}))
    with pytest.raises(UserError, match=words) as e:
        DiffPortrait3DPipeline.from_pretrained(folder)
    assert len(str(e.value).splitlines()) == 1 and "model_index.json" in str(e.value)
    with pytest.raises(UserError, match=words):
        DiffPortrait3DPipeline(**{**tiny_pipe.components, "turbo": entry})
    if entry == {"steps": 0}:
        run_bad(capsys, ["render", files / "ref.png", "--model", folder, "--views", "2", "-o", tmp_path / "out"],
                "bad \"turbo\" entry")


@pytest.mark.parametrize("options, message", [
    ({"steps": 60}, "option steps must be >= 1 and <= 50, got 60"),
    ({"steps": 8, "teacher_steps": 4}, "option steps must be >= 1 and <= 4, got 8"),
    ({"teacher_steps": 2000}, "option teacher_steps must be >= 1 and <= 1000, got 2000"),
    ({"steps": 2.5}, "option steps must be a whole number, got 2.5"),
    ({"huber_c": 0}, "option huber_c must be > 0, got 0"),
    ({"guidance_scale": -1}, "option guidance_scale must be >= 0, got -1"),
    ({"ordered": "yes"}, "option ordered must be true or false, got 'yes'"),
    ({"target_decay": 1}, "option target_decay must be < 1 (a target that never moves), got 1"),
    ({"method": "progressive"}, "option method must be one of consistency, guidance, got 'progressive'"),
])
def test_distill_options_out_of_range_exit_2_before_any_work(tiny_model_dir, tmp_path, capsys, options, message):
    out = tmp_path / "run"
    (tmp_path / "data").mkdir()
    code = main(["train", "--stage", "distill", "--data", str(tmp_path / "data"), "--model", str(tiny_model_dir), "-o", str(out),
                 "--max-steps", "1", "--set", f"options={json.dumps(options)}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].endswith(message), err
    assert not out.exists()


# -- the stage -----------------------------------------------------------------------------------------------------
def test_consistency_function_is_the_sampler_and_the_identity_at_t_0(tiny_pipe):
    """_consistency(x, 0, eps) is x exactly (c_skip 1, c_out 0); at the sampler's timesteps it is LCMScheduler's
    `denoised`, so the student learns the function turbo mode samples with."""
    stage = DistillStage(copy.deepcopy(tiny_pipe), views=V)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    assert torch.equal(stage._consistency(x, torch.zeros(2, dtype=torch.long), eps), x)
    sched = lcm(tiny_pipe.scheduler.config)
    sched.set_timesteps(4)
    for t in sched.timesteps:
        want = sched.step(eps, t, x, generator=torch.Generator().manual_seed(0)).denoised
        torch.testing.assert_close(stage._consistency(x, t.repeat(2), eps), want, rtol=1e-6, atol=1e-6)


def test_the_student_reads_the_reference_through_its_own_projections(tiny_pipe, monkeypatch):
    """A ReferenceBank keeps the keys and values of its first reader. In a training step no bank is read by two
    UNets: the student projects the reference tokens with its own W_K, W_V (with gradient), as when it samples,
    not with the teacher's that an earlier teacher call cached in a shared bank."""
    from diffportrait3d.models.reference_attention import ReferenceBank

    readers, banks, original = {}, [], ReferenceBank.keys_values

    def record(bank, name, attn):
        banks.append(bank)  # alive until the end: ids stay unique
        readers.setdefault((id(bank), name), set()).add(attn)
        return original(bank, name, attn)

    monkeypatch.setattr(ReferenceBank, "keys_values", record)
    stage = DistillStage(copy.deepcopy(tiny_pipe), views=V)
    batch = {**torch.utils.data.default_collate([ToySet()[i] for i in range(2)]), "seed": torch.arange(2)}
    with stage.context():
        stage(batch)[0].backward()
    student, teacher = set(stage.pipe.turbo_unet.modules()), set(stage.pipe.unet.modules())
    assert readers and all(len(r) == 1 for r in readers.values()), "a bank read by two UNets"
    assert {next(iter(r)) in student for r in readers.values()} == {True, False}
    assert all(next(iter(r)) in student | teacher for r in readers.values())
    k = next(m for m in stage.pipe.turbo_unet.modules() if m in set().union(*readers.values())).to_k.weight
    assert k.grad is not None and k.grad.abs().sum() > 0


def test_distill_lowers_the_validation_loss_and_leaves_the_teacher(tiny_pipe, tmp_path):
    """30 steps on 4 toy subjects (one group of 2 views a step, lr 3e-4, guidance 3 folded in): the fixed validation
    batch's loss (val.csv: fixed items, t and noise) falls well below its step-0 value; every frozen network stays
    bitwise the same; the exported folder holds the trained student. Measured: 0.199 -> 0.145 (0.73); with batch 2,
    training seeds 0 / 1: 0.136 / 0.147 (0.68 / 0.74), the seeds' spread 0.011; lr 1e-3: 0.173, 3e-3: 0.194."""
    stage = DistillStage(copy.deepcopy(tiny_pipe), views=V, options=DistillOptions(teacher_steps=25, method="consistency"))
    frozen = [copy.deepcopy(m.state_dict()) for m in stage.frozen()]
    student = copy.deepcopy(stage.trained().state_dict())
    cfg = TrainConfig(stage="distill", data="toy", model="toy", output=str(tmp_path / "distill"), max_steps=30, batch_size=1,
                      lr=3e-4, save_every=100, sample_every=0, log_every=1, views=V, workers=0, val_every=30, val_size=4)
    train(cfg, stage, ToySet(4), progress=False, val_dataset=ToySet(4))
    with open(tmp_path / "distill" / "logs" / "val.csv") as f:
        rows = list(csv.DictReader(f))
    before, after = float(rows[0]["val_loss"]), float(rows[-1]["val_loss"])
    print(f"distill val_loss: {before:.5f} -> {after:.5f} ({after / before:.2f})")
    assert [r["step"] for r in rows] == ["0", "30"] and after < 0.85 * before, (before, after)
    for before_state, m in zip(frozen, stage.frozen()):
        assert all(torch.equal(v, m.state_dict()[k]) for k, v in before_state.items())
    assert not all(torch.equal(v, stage.trained().state_dict()[k]) for k, v in student.items())
    pipe = DiffPortrait3DPipeline.from_pretrained(tmp_path / "distill" / "model")
    assert pipe.config.turbo == {"steps": 4, "guidance_scale": 3.0, "teacher_steps": 25, "solver": "lcm"}
    assert states_equal(pipe.turbo_unet, stage.pipe.turbo_unet)


def test_the_target_network_is_an_ema_of_the_student_swapped_in_for_the_target_only(tiny_pipe):
    """LCM's target network (option target_decay 0.95): after each optimiser step it moves 5% of the way to the student;
    the loss's target term is computed with its weights, and the student's own weights are back in place after
    the forward (the gradient and the optimiser see only them). With the target equal to the student the loss is
    the online student's (target_decay 0) to the bit."""
    stage = DistillStage(copy.deepcopy(tiny_pipe), views=V, options=DistillOptions(target_decay=0.95, method="consistency"))
    params = list(stage.trained().parameters())
    batch = {**torch.utils.data.default_collate([ToySet()[i] for i in range(2)]), "seed": torch.arange(2)}
    stage.after_step()  # the target starts as the student
    w0 = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in params:
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    w1 = [p.detach().clone() for p in params]
    stage.after_step()
    for t, a, b in zip(stage._target, w0, w1):
        torch.testing.assert_close(t, 0.95 * a + 0.05 * b, rtol=1e-5, atol=1e-6)
    with stage.context(), torch.no_grad():
        ema = stage(batch)[0].item()
        assert all(torch.equal(p, w) for p, w in zip(params, w1))
        stage._target = [w.clone() for w in w1]
        same = stage(batch)[0].item()
        stage._target = None
        online = stage(batch)[0].item()
    assert same == online and abs(ema - online) > 1e-4 * online, (ema, same, online)


def test_guidance_distillation_learns_the_teacher_guided_eps(tiny_pipe):
    """Option method "guidance": the loss is the MSE between the student's noise prediction and the teacher's guided
    one, w eps_c + (1 - w) eps_u. The student starts as the teacher's copy, so at one batch, t and noise the loss is
    (w - 1)^2 MSE(eps_c, eps_u): 0 at w = 1, and w = 3 gives four times w = 2."""
    batch = {**torch.utils.data.default_collate([ToySet()[i] for i in range(2)]), "seed": torch.arange(2),
             "timestep": torch.tensor([600, 600])}
    losses = {}
    for w in (1.0, 2.0, 3.0):
        stage = DistillStage(copy.deepcopy(tiny_pipe), views=V, options=DistillOptions(method="guidance", guidance_scale=w))
        with stage.context(), torch.no_grad():
            losses[w] = stage(batch)[0].item()
    assert losses[1.0] < 1e-6 * losses[2.0] and losses[2.0] > 1e-5, losses
    assert abs(losses[3.0] / losses[2.0] - 4) < 1e-3, losses
    # and the student learns it: Adam on this one batch (deterministic gradient) halves it and more in 20 steps
    # (the toy's guidance term is small, MSE ~1e-4: on fresh batches Adam's steps at lr 3e-4 outrun it)
    opt = torch.optim.Adam(stage.trained().parameters(), lr=1e-4)
    with stage.context():
        for _ in range(20):
            opt.zero_grad()
            loss = stage(batch)[0]
            loss.backward()
            opt.step()
        with torch.no_grad():
            after = stage(batch)[0].item()
    print(f"guidance distillation, one batch: {losses[3.0]:.3g} -> {after:.3g}")
    assert after < 0.5 * losses[3.0], (losses[3.0], after)


def test_a_guidance_student_samples_with_ddim_run_by_hand(tiny_pipe, tmp_path):
    """A folder distilled with method "guidance" (the default) samples turbo with DDIM on trailing timesteps (999
    first), deterministic (eta 0, whatever eta is given): the student's conditional eps, one backbone batch per step,
    equal to the bit."""
    stage = DistillStage(copy.deepcopy(tiny_pipe), views=V, options=DistillOptions(steps=3))
    stage.export(tmp_path / "model")
    pipe = DiffPortrait3DPipeline.from_pretrained(tmp_path / "model")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.turbo["solver"] == "ddim"
    out = render(pipe, "turbo", seed=3, eta=0.5)
    ref, conds = inputs()
    student = Networks(pipe.turbo_unet, pipe.reference_unet, pipe.controlnet, pipe.turbo_view_modules, pipe.reference_position)
    sched = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing", clip_sample=False)
    sched.set_timesteps(3)
    assert sched.timesteps.tolist()[0] == 999
    with torch.no_grad():
        cond = ViewConditions(context=pipe.prompt_embedding(), ref_latents=pipe.encode(ref), control_images=conds,
                              guidance_scale=1.0)
        g = torch.Generator().manual_seed(3)
        x = randn_tensor(out.shape, generator=g)
        for t in sched.timesteps:
            x = sched.step(grouped_eps(student, x, t, cond, V), t, x, eta=0.0).prev_sample
    assert torch.equal(out, x)

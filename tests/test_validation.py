"""Validation that shows learning (training/validation.py): a fixed batch with fixed timesteps and
noise, the stage's loss with its module on and off; the x0-space loss floor; reconstruction pairs;
the base stage's self-reference training."""

import copy
import csv

import numpy as np
import pytest
import torch

from diffportrait3d.pipeline.schedule import sd15_alphas_cumprod
from diffportrait3d.training.config import TrainConfig
from diffportrait3d.training.loop import train
from diffportrait3d.training.noising import min_snr_weights
from diffportrait3d.training.stages import stage_class
from diffportrait3d.training.stages.base_models import BaseUNetStage
from diffportrait3d.training.validation import gap_stalled, validate, validation_batch

from toy_data import ToySet

torch.set_num_threads(1)
V = 2


def cfg(tmp_path, stage, **kw):
    base = dict(stage=stage, data="toy", model="toy", output=str(tmp_path / stage), max_steps=4, batch_size=4, lr=1e-3,
                save_every=100, sample_every=0, log_every=1, views=V, workers=0, val_size=4)
    return TrainConfig(**{**base, **kw})


def make_stage(name, pipe, **kw):
    if name == "base":
        return BaseUNetStage(copy.deepcopy(pipe.unet), copy.deepcopy(pipe.vae), copy.deepcopy(pipe.prompt_embedding), **kw)
    return stage_class(name)(copy.deepcopy(pipe), views=V, **kw)


def test_snr_floor_makes_the_loss_x0_space_below_it():
    a = sd15_alphas_cumprod()
    t = torch.arange(1000)
    snr = (a / (1 - a)).double()
    w = min_snr_weights(a, t, 5.0, 0.25).double()
    assert torch.allclose(w, snr.clamp(0.25, 5.0) / snr, rtol=1e-6)
    low = snr < 0.25  # eps error e is an x0 error e / sqrt(SNR): weight x SNR = floor is floor x x0-MSE
    assert low.sum() > 300 and torch.allclose((w * snr)[low], torch.full_like(snr[low], 0.25), rtol=1e-6)
    assert w[999] > 50 and w[0] < 0.01
    assert torch.equal(min_snr_weights(a, t, 5.0, 0.0), min_snr_weights(a, t, 5.0))
    only_floor = min_snr_weights(a, t, 0.0, 1.0).double()
    assert torch.allclose(only_floor, snr.clamp(min=1.0) / snr, rtol=1e-6) and only_floor[:200].eq(1).all()


def test_validation_batch_is_fixed_and_spread_over_the_schedule(tiny_pipe, tmp_path):
    stage = make_stage("reference", tiny_pipe)
    c = cfg(tmp_path, "reference")
    a, b = validation_batch(stage, c, ToySet(8)), validation_batch(stage, c, ToySet(8))
    assert a["timestep"].tolist() == [0, 333, 666, 999]
    assert torch.equal(a["seed"], b["seed"]) and torch.equal(a["target"], b["target"])
    first, again = validate(stage, a), validate(stage, a)
    assert first == again and set(first) == {"val_loss", "val_off"}
    with torch.no_grad():  # a different t changes the number: the timestep really is the fixed one
        other = validate(stage, {**a, "timestep": torch.full((4,), 500)})
    assert other["val_loss"] != first["val_loss"]


@pytest.mark.parametrize("name", ["reference", "view", "consistency"])
def test_off_removes_exactly_the_trained_module(tiny_pipe, tmp_path, name):
    """val_off does not depend on the trained module's weights; val_loss does. A fresh ControlNet
    (zero convolutions) and fresh view modules (zero output projections) are identities: on == off."""
    stage = make_stage(name, tiny_pipe)
    batch = validation_batch(stage, cfg(tmp_path, name), ToySet(4))
    before = validate(stage, batch)
    if name == "reference":
        assert before["val_loss"] != before["val_off"]  # the copied base's tokens change the backbone's attention
    else:
        assert before["val_loss"] == before["val_off"]
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in stage.trained().parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    after = validate(stage, batch)
    assert after["val_off"] == before["val_off"]
    assert abs(after["val_loss"] - before["val_loss"]) > 1e-4


def test_training_logs_validation_and_the_reference_gap_grows(tiny_pipe, tmp_path):
    """ToySet's subjects differ only in colour, which only the reference carries: what the reference
    UNet learns shows as val_off - val_loss. Measured: gap -0.002 at step 0, 0.17 / 0.30 / 0.35 at 10 / 20 / 30."""
    stage = make_stage("reference", tiny_pipe, snr_floor=0.25)
    # val_patience 1: a gap that grows at every validation never stops the run
    c = cfg(tmp_path, "reference", max_steps=30, val_every=10, lr=2e-3, val_patience=1)
    assert train(c, stage, ToySet(4), progress=False, val_dataset=ToySet(4))["step"] == 30
    with open(tmp_path / "reference" / "logs" / "val.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 30]
    gap = [float(r["val_off"]) - float(r["val_loss"]) for r in rows]
    # the backbone is frozen, so off is computed once (off_fixed): the trained stage gives that number afresh
    assert {r["val_off"] for r in rows} == {str(validate(stage, validation_batch(stage, c, ToySet(4)))["val_off"])}
    assert gap[-1] > gap[0] + 0.15 and gap[-1] > gap[1], gap


def test_gap_stalled_counts_validations_since_the_best_gap():
    rows = lambda gaps: [{"val_loss": 1.0, "val_off": 1.0 + g} for g in gaps]  # noqa: E731
    assert not gap_stalled(rows([0.1, 0.2, 0.3]), 2)
    assert not gap_stalled(rows([0.1, 0.3, 0.2]), 2)     # the best is 1 validation old
    assert gap_stalled(rows([0.1, 0.3, 0.2, 0.25]), 2)   # 2 validations without a new best
    assert not gap_stalled(rows([0.3, 0.3]), 2)          # too few to judge
    assert gap_stalled([{"val_loss": v, "val_off": ""} for v in (0.5, 0.4, 0.45, 0.41)], 2)  # no off switch: the loss


def test_training_stops_when_the_gap_stops_growing(tiny_pipe, tmp_path):
    """Gradients clipped to zero and no weight decay: the weights never move, so the gap is the same at every
    validation and patience 2 ends the run at the second validation after step 0, with the model exported."""
    stage = make_stage("reference", tiny_pipe)
    c = cfg(tmp_path, "reference", max_steps=20, val_every=1, val_patience=2, max_grad_norm=0.0, weight_decay=0.0)
    assert train(c, stage, ToySet(4), progress=False, val_dataset=ToySet(4))["step"] == 2
    assert (tmp_path / "reference" / "model" / "model_index.json").is_file()


def test_same_view_pairs(tmp_path_factory):
    from diffportrait3d.data.eg3d_dataset import PairDataset
    from diffportrait3d.data.synth import SynthConfig, synth

    out = tmp_path_factory.mktemp("pairs")
    synth(out, SynthConfig(subjects=2, frames=1, views=3, res=32), progress=False)
    plain = PairDataset(out, res=32, condition_source="none")
    never, always = (PairDataset(out, res=32, condition_source="none", same_view=s) for s in (0.0, 1.0))
    for i in range(len(plain)):
        assert plain[i]["reference_view"] == never[i]["reference_view"] != never[i]["target_view"]  # 0: the old draws
        assert always[i]["reference_view"] == always[i]["target_view"]
    half = PairDataset(out, res=32, condition_source="none", same_view=0.5)
    same = []
    for epoch in range(20):
        half.set_epoch(epoch)
        same += [half[i]["reference_view"] == half[i]["target_view"] for i in range(len(half))]
    assert 0.3 < np.mean(same) < 0.7
    # the base stage's self-reference pairs draw the same way (its "copy first" option)
    from diffportrait3d.training.stages.base_models import images_dataset

    c = TrainConfig(stage="base", data=str(out), model="toy")
    copies = images_dataset(c, 32, references=True, same_view=1.0)
    assert all(copies[i]["reference_view"] == copies[i]["view"] for i in range(len(copies)))
    others = images_dataset(c, 32, references=True)
    assert all(others[i]["reference_view"] != others[i]["view"] for i in range(len(others)))


def test_base_with_references(tiny_pipe, tmp_path):
    """reference_prob 0 is the plain base stage bitwise; with references the stage is switchable, its
    off half is exactly the plain base's loss, and its references come from the same UNet."""
    plain, with_refs = make_stage("base", tiny_pipe), make_stage("base", tiny_pipe, reference_prob=0.5)
    batch = {"image": ToySet()[0]["target"][None].repeat(4, 1, 1, 1), "reference": ToySet()[0]["reference"][None].repeat(4, 1, 1, 1),
             "seed": torch.arange(4), "timestep": torch.tensor([100, 400, 700, 999])}
    with torch.no_grad():
        off = with_refs(batch, off=True)[0]
        assert torch.equal(off, plain(batch)[0])
        on = with_refs(batch, off=False)[0]
        mixed = with_refs(batch)[0]  # about half the rows read their reference
    assert on != off and mixed not in (on, off)
    assert not plain.switchable and with_refs.switchable


def test_a_launcher_that_started_one_of_several_processes_is_stopped():
    """What `accelerate launch --cpu --num_processes 2` sets without MPI (accelerate/utils/launch.py:
    prepare_simple_launcher_cmd_env) in its one process; torchrun's processes carry WORLD_SIZE."""
    from diffportrait3d.errors import UserError
    from diffportrait3d.training.loop import check_launcher

    simple = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    with pytest.raises(UserError, match="torchrun --nproc_per_node N"):
        check_launcher(1, simple)
    check_launcher(1, {"ACCELERATE_USE_CPU": "True"})  # accelerate launch asked for one process
    check_launcher(1, {})  # plain `dp3d train`
    check_launcher(2, {**simple, "WORLD_SIZE": "2"})  # torchrun


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine", "stable-decay"])
@pytest.mark.parametrize("processes", [1, 2])
def test_lr_schedules_at_known_steps(schedule, processes):
    """Warm-up 4 and max_steps 10 in optimiser steps, whatever the process count: a prepared scheduler
    steps once per process per optimiser step (training/loop.py: make_scheduler). stable-decay: constant, then
    linear to 0 over the last 3 steps."""
    import math

    from diffportrait3d.training.loop import make_scheduler

    decay = 3 if schedule == "stable-decay" else 0
    c = TrainConfig(stage="reference", data="toy", model="toy", lr=1e-3, warmup_steps=4, max_steps=10,
                    lr_schedule="constant" if decay else schedule, decay_steps=decay)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=c.lr)
    sched = make_scheduler(c, opt, processes)
    got = []
    for _ in range(11):
        got.append(opt.param_groups[0]["lr"])
        for _ in range(processes):
            opt.step()
            sched.step()

    def expected(k):
        if k < 4:
            return k / 4
        frac = (k - 4) / 6
        return {"constant": 1.0, "linear": 1 - frac, "cosine": 0.5 * (1 + math.cos(math.pi * frac)),
                "stable-decay": min(1.0, (10 - k) / 3)}[schedule]

    assert got == pytest.approx([1e-3 * expected(k) for k in range(11)], abs=1e-12)


def test_ema_follows_its_formula_is_exported_and_resumes(tiny_pipe, tmp_path):
    """diffusers' EMAModel: shadow_k = d_k shadow_{k-1} + (1 - d_k) p_k with d_1 = 0 and
    d_k = min(decay, k / (9 + k)); the exported model holds the shadow, a resumed run the same one."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    decay = 0.5
    stage = make_stage("base", tiny_pipe)
    train(cfg(tmp_path / "a", "base", max_steps=3, save_every=1, keep_last=5, ema_decay=decay), stage, ToySet(4), progress=False)
    ckpts = sorted((tmp_path / "a" / "base" / "checkpoints").iterdir())
    raw = [load_file(c / "trainable.safetensors") for c in ckpts]  # the trained weights after steps 1, 2, 3
    shadow = {k: v.clone() for k, v in raw[0].items()}
    for k in (2, 3):
        d = min(decay, k / (9 + k))
        shadow = {n: d * shadow[n] + (1 - d) * raw[k - 1][n] for n in shadow}
    exported = UNet2DConditionModel.from_pretrained(tmp_path / "a" / "base" / "model" / "unet").state_dict()
    worst = max((exported[n] - shadow[n]).abs().max().item() for n in shadow)
    moved = max((raw[2][n] - shadow[n]).abs().max().item() for n in shadow)
    assert worst < 1e-6 and moved > 1e-4, (worst, moved)  # the shadow, not the last weights
    # stopped after 2 steps, resumed to 3 with fresh weights: the same exported EMA
    train(cfg(tmp_path / "b", "base", max_steps=2, ema_decay=decay), make_stage("base", tiny_pipe), ToySet(4), progress=False)
    train(cfg(tmp_path / "b", "base", max_steps=3, ema_decay=decay), make_stage("base", tiny_pipe), ToySet(4), resume=True,
          progress=False)
    again = UNet2DConditionModel.from_pretrained(tmp_path / "b" / "base" / "model" / "unet").state_dict()
    assert all(torch.equal(again[n], exported[n]) for n in exported)


def test_reference_stage_with_control_runs_the_frozen_controlnet(tiny_pipe, tmp_path):
    """options control: true: the reference trains with the view ControlNet giving the target's camera; the
    ControlNet is in both the on and the off loss and never moves."""
    from diffportrait3d.training.stages.diffportrait3d import ReferenceOptions

    pipe = copy.deepcopy(tiny_pipe)
    with torch.no_grad():  # a fresh ControlNet's zero convolutions add nothing: make it say something
        g = torch.Generator().manual_seed(1)
        for p in pipe.controlnet.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    plain = make_stage("reference", pipe)
    with_control = make_stage("reference", pipe, options=ReferenceOptions(control=True))
    batch = validation_batch(with_control, cfg(tmp_path, "reference"), ToySet(4))
    a, b = validate(plain, batch), validate(with_control, batch)
    assert abs(a["val_loss"] - b["val_loss"]) > 1e-4 and abs(a["val_off"] - b["val_off"]) > 1e-4
    before = copy.deepcopy(with_control.controlnet.state_dict())
    unet = next(p for p in with_control.reference_unet.parameters() if p.requires_grad).detach().clone()
    train(cfg(tmp_path, "reference"), with_control, ToySet(4), progress=False)
    assert all(torch.equal(v, with_control.controlnet.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(unet, next(p for p in with_control.reference_unet.parameters() if p.requires_grad))

"""Our math against tensors produced by the authors' own code (see reference_vectors/README.md).

Runs on the directory in $DP3D_REFERENCE_VECTORS (default: the copy vendored beside this file).
Nothing here assumes the tiny sizes: every shape comes from the files and the config in them.
"""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffportrait3d.convert.official import build_components
from diffportrait3d.models.denoiser import Networks, backbone_eps, control_residuals, guided_eps, reference_bank
from diffportrait3d.models.reference_attention import ReferenceBank, ReferenceState, install_reference_processors
from diffportrait3d.pipeline.sampling import denoise
from diffportrait3d.pipeline.schedule import q_sample, release_ddim, sd15_alphas_cumprod
from diffportrait3d.pipeline.view_groups import ViewConditions, grouped_eps

DIR = Path(os.environ.get("DP3D_REFERENCE_VECTORS", Path(__file__).parent / "reference_vectors"))
EPS_TOL = dict(atol=1e-4, rtol=1e-4)  # the README's suggested forward tolerance


def maxabs(a, b):
    return (a.double() - b.double()).abs().max().item()


@pytest.fixture(scope="module")
def model():
    sd = load_file(DIR / "tiny_weights.safetensors")
    cfg = json.loads((DIR / "tiny_config.json").read_text())["ldm_config_as_instantiated"]
    nets, _, report, _ = build_components(sd, cfg)
    assert report.unused == [] and report.missing == {}, report.summary()
    for m in nets.values():
        m.eval()
    install_reference_processors(nets["unet"])
    install_reference_processors(nets["reference_unet"])
    nets["view_modules"].attach(nets["unet"])
    return Networks(nets["unet"], nets["reference_unet"], nets["controlnet"], nets["view_modules"]), cfg


@pytest.fixture(scope="module")
def vec():
    return {**load_file(DIR / "inputs.safetensors"), **load_file(DIR / "outputs_forward.safetensors"),
            **load_file(DIR / "intermediates_cond.safetensors")}


def views(vec):
    return vec["x_noisy"].shape[0]


@torch.no_grad()
def test_bank_and_pose_residuals(model, vec):
    nets, _ = model
    bank = reference_bank(nets, vec["ref_latent"], vec["t"], vec["context"])
    entries = sorted(k for k in vec if k.startswith("bank."))
    assert len(bank) == len(entries)
    for got, key in zip(bank.values(), entries):  # the writers' order is the forward order
        torch.testing.assert_close(got, vec[key], **EPS_TOL)
    down, mid = control_residuals(nets, vec["x_noisy"], vec["t"], vec["context"], vec["hint"])
    entries = sorted(k for k in vec if k.startswith("pose_control."))
    assert len(down) + 1 == len(entries)
    for got, key in zip(list(down) + [mid], entries):
        torch.testing.assert_close(got, vec[key], **EPS_TOL)


@torch.no_grad()
@pytest.mark.parametrize("suffix", ["", "_var"])
def test_eps_cond_and_uncond(model, vec, suffix):
    nets, _ = model
    x, v = vec["x_noisy"], views(vec)
    t, ctx, ref = vec["t" + suffix], vec["context" + suffix], vec["ref_latent" + suffix]
    bank = reference_bank(nets, ref, t, ctx)
    res = control_residuals(nets, x, t, ctx, vec["hint"])
    eps_c = backbone_eps(nets, x, t, ctx, v, ReferenceState("read", bank, v), res)
    eps_u = backbone_eps(nets, x, t, ctx, v)
    torch.testing.assert_close(eps_c, vec["eps_cond" + suffix], **EPS_TOL)
    torch.testing.assert_close(eps_u, vec["eps_uncond" + suffix], **EPS_TOL)
    if not suffix:
        eps_np = backbone_eps(nets, x, t, ctx, v, ReferenceState("read", bank, v))
        torch.testing.assert_close(eps_np, vec["eps_cond_nopose"], **EPS_TOL)


@torch.no_grad()
def test_fast_guided_eps_matches_release(model, vec):
    """Our default path (shared batch-1 reference, batched CFG) against the released two calls."""
    nets, _ = model
    eps, _, _ = guided_eps(nets, vec["x_noisy"], vec["t"][0], vec["context_single"], vec["ref_latent_single"], vec["hint"], 3.0)
    want = vec["eps_uncond"] + 3 * (vec["eps_cond"] - vec["eps_uncond"])
    assert maxabs(eps, want) < 4 * EPS_TOL["atol"] * max(1.0, want.abs().max().item())


@torch.no_grad()
def test_unit_vectors(model, vec, ):
    nets, cfg = model
    unet, layers = nets.unet, cfg["model"]["params"]["unet_config"]["params"]["num_res_blocks"]
    sinus = unet.time_proj(vec["unit.t"])
    torch.testing.assert_close(sinus, vec["unit.t_sinusoid"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(unet.time_embedding(sinus), vec["unit.emb"], **EPS_TOL)
    # `input_blocks_motion_module.3` on its own; the batch is one group of views
    mm = nets.view_modules.input_blocks_motion_module[3][0]
    torch.testing.assert_close(mm(vec["unit.mm_in"], vec["unit.mm_in"].shape[0]), vec["unit.mm_out"], **EPS_TOL)
    # spatial transformer LDM input_blocks.4.1 = down block (4-1)//(L+1), layer (4-1)%(L+1)
    b, j = 3 // (layers + 1), 3 % (layers + 1)
    st = unet.down_blocks[b].attentions[j]
    name = f"down_blocks.{b}.attentions.{j}.transformer_blocks.0.attn1.processor"
    x, ctx = vec["unit.st_in"], vec["context_var"]
    torch.testing.assert_close(st(x, encoder_hidden_states=ctx).sample, vec["unit.st_plain_out"], **EPS_TOL)
    write = ReferenceState("write")
    out = st(x, encoder_hidden_states=ctx, cross_attention_kwargs={"reference": write}).sample
    torch.testing.assert_close(out, vec["unit.st_write_out"], **EPS_TOL)
    torch.testing.assert_close(write.bank[name], vec["unit.st_written_bank"], **EPS_TOL)
    read = ReferenceState("read", ReferenceBank({name: vec["unit.st_bank"]}), x.shape[0])
    torch.testing.assert_close(st(x, encoder_hidden_states=ctx, cross_attention_kwargs={"reference": read}).sample,
                               vec["unit.st_read_out"], **EPS_TOL)
    torch.testing.assert_close(nets.controlnet.controlnet_cond_embedding(vec["hint"]), vec["unit.hint_out"], **EPS_TOL)


def release_scheduler(steps):
    """The pipeline's default scheduler component, as the loop uses it."""
    sched = release_ddim()
    sched.set_timesteps(steps)
    return sched


def test_schedule():
    """The diffusers DDIMScheduler component, configured as the release, has the release's coefficients."""
    s = load_file(DIR / "schedule.safetensors")
    ac = sd15_alphas_cumprod()
    assert maxabs(ac, s["alphas_cumprod"]) == 0.0
    for key in {k.split(".")[0] for k in s if k.startswith("ddim")}:
        steps, eta = int(key[4:].split("_")[0]), float(key.split("eta")[1].replace("p", "."))
        sched = release_scheduler(steps)
        ts = sched.timesteps
        assert ts.tolist() == s[f"{key}.timesteps"].flip(0).tolist()
        prev = ts - sched.config.num_train_timesteps // steps
        got = {"alphas": sched.alphas_cumprod[ts],
               "alphas_prev": torch.stack([sched.alphas_cumprod[p] if p >= 0 else sched.final_alpha_cumprod for p in prev]),
               "sigmas": eta * torch.stack([sched._get_variance(t, p) for t, p in zip(ts, prev)]).sqrt(),
               "sqrt_one_minus_alphas": (1 - sched.alphas_cumprod[ts]).sqrt()}
        for f, v in got.items():
            assert maxabs(v.float(), s[f"{key}.{f}"].flip(0)) < 1e-7, (key, f)


def sampling_files():
    return sorted(p.stem[len("sampling_"):] for p in DIR.glob("sampling_*.safetensors"))


def _run_setup(name, vec):
    run = load_file(DIR / f"sampling_{name}.safetensors")
    steps = run["t"].shape[0]
    eta = float(name.split("eta")[1].replace("p", "."))
    noise = vec.get(f"ddim{steps}_eta{name.split('eta')[1]}_noise")
    return run, release_scheduler(steps), eta, noise


@torch.no_grad()
@pytest.mark.parametrize("name", [n for n in sampling_files() if "x_in" in load_file(DIR / f"sampling_{n}.safetensors")])
def test_every_ddim_step(model, vec, name):
    nets, _ = model
    run, sched, eta, noise = _run_setup(name, vec)
    assert sched.timesteps.tolist() == run["t"][:, 0].tolist()
    for k, t in enumerate(sched.timesteps):
        x = run["x_in"][k]
        eps, eps_c, eps_u = guided_eps(nets, x, t, vec["context_single"], vec["ref_latent_single"], vec["hint"], 3.0)
        torch.testing.assert_close(eps_c, run["eps_cond"][k], **EPS_TOL)
        torch.testing.assert_close(eps_u, run["eps_uncond"][k], **EPS_TOL)
        out = sched.step(eps, t, x, eta=eta, variance_noise=None if noise is None else noise[k])
        tol = 1e-4 * x.abs().max().item()
        assert maxabs(out.pred_original_sample, run["pred_x0"][k]) < 1e-4 * run["pred_x0"][k].abs().max().item()
        assert maxabs(out.prev_sample, run["x_out"][k]) < tol


@torch.no_grad()
@pytest.mark.parametrize("name", sampling_files())
def test_whole_runs(model, vec, name):
    """The pipeline's loop (denoise + grouped_eps + the scheduler component) against whole release runs."""
    nets, _ = model
    run, sched, eta, noise = _run_setup(name, vec)
    x_t = q_sample(vec["proxy_latent"], vec["q_sample_noise"], sd15_alphas_cumprod(), 999)
    assert maxabs(x_t, run["x_T"]) < 1e-5 * run["x_T"].abs().max().item()
    cond = ViewConditions(vec["context_single"], vec["ref_latent_single"], vec["hint"], 3.0)
    final = denoise(lambda x, t: grouped_eps(nets, x, t, cond, group_size=x.shape[0]), run["x_T"], sched, eta=eta, step_noise=noise)
    rel = maxabs(final, run["final"]) / run["final"].std().item()
    assert rel < 1e-4, rel  # measured 1.4e-5 (4 steps) to 2.4e-5 (50), as through the pipeline (test_converted_release.py)


def test_full_size_layout_converts_completely():
    """Every key of the released full-size layout maps with matching shapes (meta tensors)."""
    manifest = json.loads((DIR / "full_size_manifest.json").read_text())
    sd = {k: torch.empty(shape, device="meta") for part in manifest["keys"].values() for k, shape in part.items()}
    nets, cfg, report, _ = build_components(sd, None, meta=True)
    assert report.unused == [] and report.missing == {}, report.summary()
    assert cfg["unet"]["block_out_channels"] == (320, 640, 1280, 1280)
    n_view = sum(1 for k in sd if "_motion_module" in k)
    assert len(nets["view_modules"].state_dict()) == n_view
    assert len(list(nets["view_modules"].children())) == 3
    assert sum(len(m) for m in nets["view_modules"].output_blocks_motion_module) + 11 + 1 == 27

"""How much the reference improves the denoiser's clean-latent estimate, timestep by timestep.

    python benchmarks/bench_reference_x0.py [--model mini] [--seed 1000] [--subjects 6]

For held-out subjects (metrics/heldout.py), the target latent (the reference itself, then another
view) is noised to t with fixed noise, and the x0 estimate (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) of
the conditional branch (reference tokens + ControlNet on the target's own render) is compared with
the unconditional one (neither), as mean squared error in the latent space. A module that reads the
reference well drives the "ref" column far below "off", most of all at high t where colours and
layout are decided (docs/miniature.md, take four: take three gets 0.91 of "off" at t = 999).
"""

import argparse

import torch

from diffportrait3d.metrics.heldout import HeldoutSubject
from diffportrait3d.models.denoiser import backbone_eps, control_residuals, shared_reference_bank
from diffportrait3d.models.latent_scale import scale_latents
from diffportrait3d.models.reference_attention import ReferenceState
from diffportrait3d.pipeline.loading import load_pipeline
from diffportrait3d.pipeline.schedule import q_sample

TIMESTEPS = (999, 900, 700, 500, 300, 100)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mini")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--subjects", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(1)
    pipe = load_pipeline(a.model, device="cpu")
    nets, ac, ctx = pipe.networks, pipe.alphas_cumprod, pipe.prompt_embedding(1)
    subjects = [HeldoutSubject(a.seed, i) for i in range(a.subjects)]
    latent = lambda x: scale_latents(pipe.vae, pipe.vae.encode(x).latent_dist.mean)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    print(f"model {a.model}, held-out seed {a.seed}, {a.subjects} subjects: x0 MSE with reference + control vs without\n")
    print("| target | t | ref | off | ref / off |\n|---|---|---|---|---|")
    for name, view in (("the reference itself", 0), ("another view", 1)):
        for t in TIMESTEPS:
            err = {"ref": 0.0, "off": 0.0}
            for s in subjects:
                target = s.images[view : view + 1]
                z_ref, z0 = latent(s.images[:1]), latent(target)
                tt = torch.tensor([t])
                x_t = q_sample(z0, torch.randn(z0.shape, generator=g), ac, tt)
                bank = shared_reference_bank(nets, z_ref, tt, ctx)
                res = control_residuals(nets, x_t, tt, ctx, target)
                for k, (state, r) in {"ref": (ReferenceState("read", bank, 1), res), "off": (None, None)}.items():
                    eps = backbone_eps(nets, x_t, tt, ctx, 1, state, r)
                    x0 = (x_t - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
                    err[k] += (x0 - z0).pow(2).mean().item() / len(subjects)
            print(f"| {name} | {t} | {err['ref']:.3f} | {err['off']:.3f} | {err['ref'] / err['off']:.2f} |")


if __name__ == "__main__":
    main()

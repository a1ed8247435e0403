"""How well a BASE UNet reads a reference through its own self-attention (the write/read path the base
stage trains with `reference_prob`), timestep by timestep.

    python benchmarks/bench_base_reference_x0.py MODEL_DIR [--seed 1000] [--subjects 6]

MODEL_DIR holds unet/, vae/ and prompt_embedding/ (a base stage's model folder, or a full model folder:
its backbone). For held-out subjects (metrics/heldout.py) the reference view is noised to t with fixed
noise and the x0 estimate (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) is compared with the truth as latent MSE,
once while the UNet also reads a clean latent through its self-attention (the target itself: copying;
another view of the subject) and once without. "ref / off" far below 1 is a read path that can copy
(docs/miniature.md, take five: copy pairs reach 0.65 at t = 900, head width changes nothing).
"""

import argparse

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from diffportrait3d.metrics.heldout import HeldoutSubject
from diffportrait3d.models.latent_scale import scale_latents
from diffportrait3d.models.prompt_embedding import PromptEmbedding
from diffportrait3d.models.reference_attention import ReferenceState, install_reference_processors
from diffportrait3d.pipeline.schedule import q_sample
from diffportrait3d.training.noising import Noiser

TIMESTEPS = (999, 900, 700, 500, 300)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--subjects", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(1)
    unet = UNet2DConditionModel.from_pretrained(f"{a.model}/unet").eval()
    vae = AutoencoderKL.from_pretrained(f"{a.model}/vae")
    ctx = PromptEmbedding.from_pretrained(f"{a.model}/prompt_embedding")(1)
    install_reference_processors(unet)
    ac = Noiser().alphas_cumprod
    subjects = [HeldoutSubject(a.seed, i) for i in range(a.subjects)]
    latent = lambda x: scale_latents(vae, vae.encode(x).latent_dist.mean)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    print(f"{a.model}, held-out seed {a.seed}, {a.subjects} subjects: x0 MSE reading a reference / without\n")
    print("| reference | " + " | ".join(f"t = {t}" for t in TIMESTEPS) + " |\n|---|" + "---|" * len(TIMESTEPS))
    for name, view in (("the target itself", 0), ("another view", 1)):
        cells = []
        for t in TIMESTEPS:
            err = {"ref": 0.0, "off": 0.0}
            for s in subjects:
                z0, tt = latent(s.images[:1]), torch.tensor([t])
                x_t = q_sample(z0, torch.randn(z0.shape, generator=g), ac, tt)
                write = ReferenceState("write")
                unet(latent(s.images[view : view + 1]), tt, encoder_hidden_states=ctx, cross_attention_kwargs={"reference": write})
                for k, state in (("ref", ReferenceState("read", write.bank, 1)), ("off", None)):
                    eps = unet(x_t, tt, encoder_hidden_states=ctx, cross_attention_kwargs={"reference": state}).sample
                    x0 = (x_t - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
                    err[k] += (x0 - z0).pow(2).mean().item() / len(subjects)
            cells.append(f"{err['ref']:.3f} / {err['off']:.3f} = {err['ref'] / err['off']:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""What the view modules add, by timestep: the consistency stage's loss with the modules on and off (issue 36).

    python benchmarks/bench_view_module_gap.py [--model mini] [--seed 1] [--subjects 16] [--groups 2]
        [--timesteps 50,150,...,950] [--threads 1] [--out bench_view_module_gap_out]

Held-out heads along yaw sweeps (`dp3d synth --views 9 --sweep 12 --conditions 1 --seed SEED`, the recipe's validation
sweeps for seed 1): per subject, 8 neighbouring views in yaw order (the consistency stage's `ordered` groups) and the
9th as the reference, their carriers from the folder. For every timestep t, the same groups and noise run through
the full model twice, view modules on and off; plain epsilon MSE (no SNR weighting, no offset noise). The gap
(off - on) and the gap relative to the loss say at which noise levels the modules change the prediction: a model
whose unseen side is decided at high t needs them there. Writes gap.md and gap.png under --out.
"""

import argparse
import tempfile
from pathlib import Path

import torch

from diffportrait3d.cli.main import OneLineParser
from diffportrait3d.data.synth import SynthConfig, synth
from diffportrait3d.training.config import TrainConfig
from diffportrait3d.training.stages import stage_class
from diffportrait3d.training.validation import validation_batch


def timesteps_arg(value: str) -> list[int]:
    try:
        ts = [int(t) for t in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timesteps wants whole numbers separated by commas, got {value!r}") from None
    if not all(0 <= t <= 999 for t in ts):
        raise argparse.ArgumentTypeError(f"--timesteps must lie in 0..999, got {value!r}")
    return ts


def positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"want a whole number >= 1, got {value!r}")
    return int(value)


def main():
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mini")
    ap.add_argument("--seed", type=int, default=1, help="held-out synth seed (1: the recipe's validation heads)")
    ap.add_argument("--subjects", type=positive, default=16)
    ap.add_argument("--groups", type=positive, default=2, help="groups per forward pass")
    ap.add_argument("--timesteps", type=timesteps_arg, default=list(range(50, 1000, 100)))
    ap.add_argument("--threads", type=positive, default=1)
    ap.add_argument("--out", default="bench_view_module_gap_out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    timesteps = a.timesteps
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sweeps"
        synth(data, SynthConfig(subjects=a.subjects, views=9, seed=a.seed, conditions=1, sweep=12.0), progress=False)
        cfg = TrainConfig(stage="consistency", data=str(data), model=a.model, views=8, condition_source="folder",
                          options={"ordered": True}, cache_latents=False, val_size=a.subjects)
        stage = stage_class("consistency").build(cfg)
        stage.trained().eval()
        groups = validation_batch(stage, cfg)  # every subject's group, encoded afresh; the noise seeds set below
        n = len(groups["seed"])
        groups["seed"] = 7_000_000 + torch.arange(n)
        rows = []
        with torch.no_grad(), stage.context():
            for t in timesteps:
                on, off = [], []
                for start in range(0, n, a.groups):
                    batch = {k: v[start:start + a.groups] for k, v in groups.items()}
                    batch["timestep"] = torch.full_like(batch["timestep"], t)
                    size = len(batch["seed"])
                    on.append(stage(batch, off=False)[0].item() * size)
                    off.append(stage(batch, off=True)[0].item() * size)
                l_on, l_off = sum(on) / n, sum(off) / n
                rows.append((t, l_on, l_off, l_off - l_on, (l_off - l_on) / l_on))
                print(f"t {t:4d}: on {l_on:.5f} off {l_off:.5f} gap {l_off - l_on:+.5f} ({100 * (l_off - l_on) / l_on:+.1f}%)")
    lines = [f"# bench_view_module_gap: {a.model}", "",
             f"{a.subjects} held-out sweeps (seed {a.seed}), 8 views in yaw order + the reference, plain epsilon MSE", "",
             "| t | loss, modules on | modules off | gap (off - on) | gap / loss |", "|---|---|---|---|---|"]
    lines += [f"| {t} | {l_on:.5f} | {l_off:.5f} | {g:+.5f} | {100 * r:+.1f}% |" for t, l_on, l_off, g, r in rows]
    (out / "gap.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar([r[0] for r in rows], [100 * r[4] for r in rows], width=60)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("timestep t")
    ax.set_ylabel("(off - on) / on, %")
    ax.set_title("view modules: loss gap by timestep")
    fig.tight_layout()
    fig.savefig(out / "gap.png", dpi=120)
    print(f"wrote {out / 'gap.md'} and {out / 'gap.png'}")


if __name__ == "__main__":
    main()

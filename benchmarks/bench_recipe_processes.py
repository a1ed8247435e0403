"""The miniature recipe's training stages on 1 process vs several (scripts/train_miniature.sh, PROCS).

    python benchmarks/bench_recipe_processes.py [--steps 50] [--subjects 60] [--procs 2]

For the base, view and reference stages, the recipe's commands with its global batch, options and losses, on a
`dp3d synth` dataset drawn as the recipe draws it (pre-rendered clay carriers, cached latents) and a random-weight
`mini` model: `dp3d train` in one process with every core's threads (torch's default) against `torchrun` with
--procs processes (DDP on gloo, one thread each, the batch split between them). Both train the same steps: their
losses are compared (the largest relative difference), and steps/s is counted from step 10 on (the DataLoader's
and the latent cache's start left out). The ratio is what to read.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DIFFUSION = ["snr_gamma=5", "snr_floor=0.1", "noise_offset=0.1", "condition_source=folder"]
RECIPE = {  # global batch, then the stage's settings in scripts/train_miniature.sh
    "base": (16, ["lr=3e-4", "ema_decay=0.999", 'options={"preset": "mini", "reference_prob": 0.5, "same_view": 0.5}']),
    "view": (8, ["lr=2e-4", 'options={"condition_jitter": 1.0, "carrier_style": "clay"}']),
    "reference": (8, ["lr=2e-4", 'options={"same_view": 0.3, "position_gain": 3.0, "position_sigma": 0.04, '
                                 '"position_moved_degrees": 10.0, "control": true}']),
}
WARM = 10


def launch(root: Path, stage: str, out: str, steps: int, procs: int):
    """The recipe's command: `dp3d train` in one process, or under torchrun with one thread per process."""
    batch, settings = RECIPE[stage]
    args = ["train", "--stage", stage, "--data", str(root / "data"), "--model", str(root / "model"), "-o", str(root / out),
            "--max-steps", str(steps), "--batch-size", str(batch // procs)]
    for s in DIFFUSION + settings + ["warmup_steps=0", "save_every=1000000", "sample_every=0", "log_every=1"]:
        args += ["--set", s]
    main = [sys.executable, "-m", "diffportrait3d.cli.main"]
    if procs > 1:
        main = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                "-m", "diffportrait3d.cli.main"]
    env = dict(os.environ, **({"OMP_NUM_THREADS": "1"} if procs > 1 else {}))
    subprocess.run(main + args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_log(path: Path):
    """(losses, steps/s from step WARM to the last): the loop logs cumulative steps/s since its start."""
    rows = [line.split(",") for line in path.read_text().strip().splitlines()[1:]]
    loss, rate = [float(r[1]) for r in rows], [float(r[3]) for r in rows]
    first, last = WARM - 1, len(rows) - 1
    elapsed = (last + 1) / rate[last] - (first + 1) / rate[first]
    return loss, (last - first) / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--subjects", type=int, default=60)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--stages", nargs="+", default=list(RECIPE), choices=list(RECIPE))
    a = ap.parse_args()
    from diffportrait3d.data.synth import SynthConfig, synth
    from diffportrait3d.pipeline.build import preset_components
    from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth(root / "data", SynthConfig(subjects=a.subjects, frames=2, views=8, res=64, seed=0, conditions=1,
                                         carrier_style="clay", workers=2), progress=False)
        pipe = DiffPortrait3DPipeline(**preset_components("mini", seed=0))
        pipe.register_to_config(carrier_style="clay")  # as the recipe's view stage leaves it
        pipe.save_pretrained(root / "model")
        print(f"{os.cpu_count()} cores; {a.subjects} subjects; steps/s over steps {WARM}-{a.steps}; "
              f"1 process x {os.cpu_count()} threads vs {a.procs} processes x 1 thread, the same global batch")
        for stage in a.stages:
            launch(root, stage, f"{stage}-1", a.steps, 1)
            launch(root, stage, f"{stage}-n", a.steps, a.procs)
            (l1, r1), (ln, rn) = (read_log(root / f"{stage}-{k}" / "logs" / "loss.csv") for k in "1n")
            diff = max(abs(x - y) / abs(x) for x, y in zip(l1, ln))
            print(f"{stage:9s} batch {RECIPE[stage][0]:2d}: 1 process {r1:5.2f} steps/s, {a.procs} processes {rn:5.2f} "
                  f"steps/s ({rn / r1:.2f}x); losses of the same steps within {diff:.1e} (relative)", flush=True)


if __name__ == "__main__":
    main()

"""Does the view ControlNet's prediction depend on which identity carries the cameras? (view option `agree`)

    python benchmarks/bench_carrier_agreement.py MODEL [MODEL ...] --data HELDOUT [--carriers 7,4,2]

On the training recipe's fixed validation batch (the first 16 pairs of HELDOUT, the held-out set of
scripts/train_miniature.sh; fixed timesteps spread over 0..999 and fixed noise), with the first carrier's
condition renders and then each other carrier's: the weighted noise-prediction MSE between the first carrier and
each other one (the quantity `agree` trains down), beside the loss with the ControlNet on and off (what it
still reads). 0 disagreement with on = off would mean the camera is no longer read at all.
"""

import argparse

import torch

from diffportrait3d.conditions.sources import render_conditions
from diffportrait3d.media import image_to_tensor
from diffportrait3d.pipeline.loading import load_pipeline
from diffportrait3d.training.config import TrainConfig
from diffportrait3d.training.stages.diffportrait3d import ViewOptions, ViewStage
from diffportrait3d.training.validation import validation_batch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", required=True, help="held-out dataset folder (dp3d synth ... --seed 1)")
    ap.add_argument("--carriers", default="7,4,2", help="condition seeds; the first is compared with each other one")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    first, *others = [int(c) for c in a.carriers.split(",")]
    print(f"| model | {' | '.join(f'disagreement {first} vs {c}' for c in others)} | loss, ControlNet on | off |")
    print("|---|" + "---|" * (len(others) + 2))
    for m in a.models:
        stage = ViewStage(load_pipeline(m, device="cpu"), snr_gamma=5, snr_floor=0.1, options=ViewOptions(agree=1.0))
        cfg = TrainConfig(stage="view", data=a.data, model=m, output="unused", val_size=16, condition_source="render")
        batch = validation_batch(stage, cfg)
        cond = {c: torch.stack([image_to_tensor(i) for i in render_conditions(batch["target_label"], stage.resolution, c)])
                for c in [first] + others}
        stage.trained().train()  # the agreement term is computed in training mode only
        with torch.no_grad():
            d = [stage({**batch, "condition": cond[first], "other_condition": cond[c]})[1]["disagree"] for c in others]
            plain = {**batch, "condition": cond[first]}
            on, off = stage(plain)[0].item(), stage(plain, off=True)[0].item()
        print(f"| {m} | {' | '.join(f'{x:.5f}' for x in d)} | {on:.4f} | {off:.4f} |", flush=True)


if __name__ == "__main__":
    main()

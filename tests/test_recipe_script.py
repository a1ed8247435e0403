"""scripts/train_miniature.sh, the one command that trains the miniature model, run end to end at toy size:
every stage once on two processes (its default), a model folder that loads with what the stages saved, and a
rerun that skips every finished stage. (Held-out data drawn in another carrier style than the training data
stopped it at the view stage on a fresh machine.)"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["data", "heldout", "sweeps", "heldout_sweeps", "vae_crops", "vae", "base", "init", "view", "reference", "consistency", "noise3d"]
TOY = dict(SUBJECTS="2", FRAMES="1", HELDOUT="2", SWEEPS="2", VAE_CROP_STEPS="1", VAE_STEPS="1", BASE_STEPS="1", VIEW_STEPS="1", REF_STEPS="1",
           CONS_GROUPS="2", N3D_STEPS="1", PROCS="2")


def recipe(out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, **TOY, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(ROOT / "scripts" / "train_miniature.sh"), str(out)], env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_recipe_runs_every_stage_once_and_resumes(tmp_path):
    from diffportrait3d.conditions.sources import model_carrier_style
    from diffportrait3d.pipeline.loading import load_pipeline

    out = tmp_path / "recipe"
    run = recipe(out)
    assert run.returncode == 0, run.stderr[-3000:]
    log = (out / "recipe_log.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in log[1:]] == STAGES
    pipe = load_pipeline(str(out / "noise3d" / "model"), device="cpu")
    assert model_carrier_style(pipe) == "clay" and pipe.reference_position is not None and pipe.noise_model is not None
    again = recipe(out)
    assert again.returncode == 0 and again.stdout.count("done, skipping") == len(STAGES)
    assert (out / "recipe_log.tsv").read_text().splitlines() == log

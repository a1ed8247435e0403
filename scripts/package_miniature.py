"""Ship the miniature model: copy a trained model folder into the package, weights in half
precision (safetensors), and report how much that changes a rendered view.

    python scripts/package_miniature.py RUN/noise3d/model [--out src/diffportrait3d/weights/mini]
"""

import argparse
import shutil
from pathlib import Path

import torch

from diffportrait3d.atomic import atomic_folder
from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src/diffportrait3d/weights/mini"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    pipe = DiffPortrait3DPipeline.from_pretrained(a.model)
    with atomic_folder(a.out) as tmp:
        pipe.to(torch.float16).save_pretrained(tmp)
        for extra in ("recipe_log.tsv",):
            src = Path(a.model).parents[1] / extra
            if src.is_file():
                shutil.copy(src, tmp / extra)
    # fp16 storage vs fp32: the same 4-step render
    full = DiffPortrait3DPipeline.from_pretrained(a.model)
    half = DiffPortrait3DPipeline.from_pretrained(a.out, dtype=torch.float32)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ref, conds = torch.zeros(1, 3, 64, 64), torch.zeros(4, 3, 64, 64)
    a32 = full(ref, conds, num_inference_steps=4, generator=g(), output_type="pt").images
    a16 = half(ref, conds, num_inference_steps=4, generator=g(), output_type="pt").images
    size = sum(f.stat().st_size for f in Path(a.out).rglob("*") if f.is_file())
    print(f"wrote {a.out}: {size / 2**20:.1f} MiB; fp16 storage changes a 4-step render by max {(a32 - a16).abs().max():.4f} (images in [0, 1])")


if __name__ == "__main__":
    main()

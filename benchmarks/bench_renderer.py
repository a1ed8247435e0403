"""Benchmark the procedural head renderer (one thread).

Prints the time per 64x64 view and per 512x512 view (scene built once, as `dp3d synth` does for the
views of a frame; building a scene adds the number printed on its own), and the wall time of
`dp3d synth` for 100 subjects x 8 views at 64 px. Targets (issue 4): 64 px well under 50 ms,
512 px under 2 s, synth 100x8 under 2 minutes.

    python benchmarks/bench_renderer.py [--skip-synth]
"""

import argparse
import tempfile
import time

import numpy as np
import torch

from diffportrait3d.cameras import camera_label
from diffportrait3d.head import Expression, Identity, build_scene, render_scene
from diffportrait3d.data.synth import SynthConfig, synth


def per_view(res: int, seeds, yaws) -> float:
    """Median CPU seconds of one view over identities and angles."""
    times = []
    for seed in seeds:
        scene = build_scene(Identity.sample(seed), Expression.sample(seed))
        render_scene(scene, camera_label(0, 0), res)  # warm-up
        for yaw in yaws:
            t = time.process_time()
            render_scene(scene, camera_label(yaw, 5), res)
            times.append(time.process_time() - t)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-synth", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t = time.process_time()
    for seed in range(50):
        build_scene(Identity.sample(seed), Expression.sample(seed))
    print(f"build a scene:      {(time.process_time() - t) / 50 * 1e3:7.1f} ms")
    print(f"64x64 view:         {per_view(64, range(10), [-80, -40, 0, 30, 70]) * 1e3:7.1f} ms")
    print(f"64x64 view, no AA:  {per_view_noaa(64) * 1e3:7.1f} ms")
    print(f"512x512 view:       {per_view(512, [0, 19, 21], [-40, 20]):7.2f} s")
    if not args.skip_synth:
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            synth(out, SynthConfig(subjects=100, frames=1, views=8, res=64), progress=False)
            print(f"synth 100x8 @64px:  {time.perf_counter() - t:7.1f} s wall (1 process)")


def per_view_noaa(res: int) -> float:
    times = []
    for seed in range(10):
        scene = build_scene(Identity.sample(seed))
        for yaw in [-80, -40, 0, 30, 70]:
            t = time.process_time()
            render_scene(scene, camera_label(yaw, 5), res, ssaa=1)
            times.append(time.process_time() - t)
    return float(np.median(times))


if __name__ == "__main__":
    main()

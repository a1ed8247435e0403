"""benchmarks/gpu_check.py (issue 38) runs on the CPU with the tiny preset: a row per mode x views with a finite,
positive time per view, and turbo (4 DDIM steps, one backbone batch) faster per view than exact (50 DDIM steps,
two batches). The full-size table is for a GPU: `bash benchmarks/gpu_check.sh`."""

import importlib.util
import math
from pathlib import Path

_spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).parents[1] / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


def table_rows(text: str) -> dict:
    """(mode, views) -> the printed row's cells, from the markdown table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 8 and cells[0] != "mode":
            rows[cells[0], int(cells[2])] = dict(zip(("mode", "steps", "views", "compile", "s/view", "s/render", "first", "peak"), cells))
    return rows


def test_gpu_check_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "table.md"
    gpu_check.main(["--device", "cpu", "--dtype", "float32", "--preset", "tiny", "--compile", "off", "--repeats", "1",
                    "--views", "2,3", "--out", str(out)])
    printed = capsys.readouterr().out
    rows = table_rows(printed)
    assert set(rows) == {(m, v) for m in ("exact", "fast", "turbo") for v in (2, 3)}
    for r in rows.values():
        s = float(r["s/view"])
        assert math.isfinite(s) and s > 0
        assert r["compile"] == "off" and r["peak"] == "n/a"
    assert [rows["exact", 2]["steps"], rows["fast", 2]["steps"], rows["turbo", 2]["steps"]] == ["50", "10", "4"]
    for v in (2, 3):  # 4 one-batch steps vs 50 two-batch steps: ~25x fewer network passes
        assert float(rows["turbo", v]["s/view"]) < float(rows["exact", v]["s/view"])
    assert table_rows(out.read_text()) == rows


def test_gpu_check_options():
    a = gpu_check.parse_args([])
    assert (a.device, a.dtype, a.preset, a.views, a.modes, a.compile) == ("cuda", "fp16", "sd15", [8, 16], ["exact", "fast", "turbo"], "both")
    pipe = gpu_check.build_pipe("tiny", gpu_check.resolve_device("cpu"), gpu_check.DTYPES["float32"], res=None)
    assert pipe.image_size == 64 and gpu_check.require_student(pipe).steps == 4
    # the student runs its own view modules once per layer, as the teacher does: no hooks of an orphaned copy
    hooks = [sum(len(m._forward_hooks) for m in unet.modules()) for unet in (pipe.unet, pipe.turbo_unet)]
    assert hooks[0] == hooks[1] > 0
    assert gpu_check.build_pipe("tiny", gpu_check.resolve_device("cpu"), gpu_check.DTYPES["float32"], res=128).image_size == 128


def test_sd15_preset_has_sd15s_shapes():
    """The sd15 preset's backbone and VAE have Stable Diffusion 1.5's exact parameter counts (built on the meta
    device: no memory, no time)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from diffportrait3d.models.presets import PRESETS

    with torch.device("meta"):
        unet, vae = UNet2DConditionModel(**PRESETS["sd15"]["unet"]), AutoencoderKL(**PRESETS["sd15"]["vae"])
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863

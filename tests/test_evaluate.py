"""`dp3d evaluate` end to end: a tiny synthetic dataset, the tiny model, a complete report."""

import json

from diffportrait3d.cli.main import main


def test_evaluate_writes_the_paper_table(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["synth", str(data), "--subjects", "3", "--frames", "1", "--views", "2", "--res", "64", "--seed", "5"]) == 0
    out = tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--pairs", "2", "--steps", "2", "-o", str(out),
            "--orbit-views", "10", "--group", "4"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["split"] for r in report["rows"]] == ["recon", "novel", "orbit"]
    orbit = report["rows"][2]["metrics"]
    assert orbit["seam ratio"]["value"] > 0 and orbit["loop closure"]["value"] > 0 and orbit["flicker ratio"]["value"] > 0
    assert orbit["flicker ratio"]["reason"] is None  # synth data: the subject re-rendered is the ground truth
    for row in report["rows"][:2]:
        m = row["metrics"]
        assert 0 < m["SSIM"]["value"] < 1 and m["PSNR"]["value"] > 0
        # no weights folder: never a number from random weights, always a reason
        for name in ("LPIPS", "DISTS", "FID"):
            assert m[name]["value"] is None and "fetch-weights" in m[name]["reason"]
        assert m["POSE"]["value"] is not None and m["POSE"]["backend"].startswith("render-and-compare")
        assert 0 <= m["ID-retrieval"]["value"] <= 1
    md = (out / "report.md").read_text()
    assert "LPIPS" in md and "n/a" in md and "seam ratio" in md and (out / "figure.png").is_file()
    cached = sorted((out / "cache").rglob("*.png"))
    assert len(cached) == 4 + 10
    # resumable: a second run reuses the cached views
    mtimes = [p.stat().st_mtime_ns for p in cached]
    assert main(args) == 0
    assert [p.stat().st_mtime_ns for p in cached] == mtimes


def test_a_changed_setting_re_renders_and_the_same_settings_reuse_the_cache(tmp_path, monkeypatch):
    """The cache key of the pair and orbit renders: every setting that changes a rendered view (model,
    dtype, mode, steps, guidance, eta, seed, proxy; the orbit's view plan) renders again; the same
    settings read the cached views back. The pipeline call is counted (a stub: no model needed)."""
    from dataclasses import replace

    import numpy as np
    import torch
    from PIL import Image

    import diffportrait3d.app.evaluate as evaluate
    import diffportrait3d.app.evaluate_orbits as evaluate_orbits
    from diffportrait3d.app.settings import RenderSettings
    from diffportrait3d.data.eg3d_index import EG3DIndex

    data = tmp_path / "data"
    assert main(["synth", str(data), "--subjects", "2", "--frames", "1", "--views", "2", "--res", "32", "--seed", "5"]) == 0
    index = EG3DIndex(str(data))
    calls = []

    def fake_sample(pipe, s, refs, conds, labels=None, reference_label=None, seed=None, **kw):
        calls.append(s)
        value = len(calls) % 256  # each call draws different pixels
        return [Image.fromarray(np.full((32, 32, 3), value, np.uint8)) for _ in conds]

    monkeypatch.setattr(evaluate, "sample", fake_sample)
    monkeypatch.setattr(evaluate_orbits, "sample", fake_sample)

    class Pipe:
        image_size = 32
        config = {}  # names no carrier style: colour

    base = RenderSettings(model=str(tmp_path / "model"), steps=2)
    pairs = evaluate.sample_pairs(index, 2, 0, "novel")

    def pair_renders(s):
        calls.clear()
        cfg = evaluate.EvalConfig(data=str(data), output=str(tmp_path / "out"), settings=s, orbit_views=4)
        gens = evaluate.render_split(Pipe(), index, pairs, cfg, 32, tmp_path / "out" / "cache" / "novel")[3]
        evaluate_orbits.orbit_row(Pipe(), index, None, cfg, tmp_path / "out" / "cache" / "orbit", "windows")
        return len(calls), gens

    first, gens = pair_renders(base)
    assert first == 2 + 1  # two pairs, one orbit
    again, gens_again = pair_renders(base)
    assert again == 0 and torch.equal(gens, gens_again)
    for change in (dict(model=str(tmp_path / "other")), dict(dtype="bf16"), dict(mode="fast"), dict(steps=3),
                   dict(guidance=2.0), dict(eta=0.0), dict(seed=1), dict(proxy="none")):
        assert pair_renders(replace(base, **change))[0] == 3, change
    assert pair_renders(replace(base, group=2))[0] == 1  # the orbit's view plan; a single-view pair does not use it

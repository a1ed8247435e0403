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

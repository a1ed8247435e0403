"""suite.compute_metrics + report.write_report: a complete report with n/a columns explained."""

import json

import numpy as np
import torch
from PIL import Image

from diffportrait3d.metrics.base import MetricResult, from_uint8_hwc
from diffportrait3d.metrics.report import Report, Row, write_report
from diffportrait3d.metrics.suite import compute_metrics
from metrics_helpers import astronaut

torch.set_num_threads(1)


def test_suite_scores_what_it_can_and_explains_the_rest(tmp_path):
    a = np.asarray(Image.fromarray(astronaut()).resize((256, 256), Image.BICUBIC))
    rng = np.random.default_rng(0)
    noisy = np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    gen, gt = from_uint8_hwc([noisy, a]), from_uint8_hwc([a, a])
    res = compute_metrics(gen, gt, weights_dir=tmp_path / "no-weights")
    assert set(res) == {"LPIPS", "DISTS", "SSIM", "ID", "FID", "POSE", "PSNR"}
    for name in ("LPIPS", "DISTS", "FID"):
        assert res[name].value is None and "not found" in res[name].reason
    assert 0.5 < res["SSIM"].value < 1.0 and res["SSIM"].per_image[1] == 1.0
    assert res["ID"].value > 0.99 and res["ID"].count == 2
    assert res["POSE"].value < 3.0 and res["POSE"].count == 2
    assert res["PSNR"].per_image[1] is None  # identical pair: infinite PSNR, left out and counted
    assert "1 of 2" in res["PSNR"].reason


def test_report_files(tmp_path):
    ok = MetricResult.from_values("SSIM", [0.8, 0.6], backend="gaussian")
    partial = MetricResult.from_values("ID", [0.9, None], reason="no face found in 1 of 2 generated and 0 of 2 reference images")
    na = MetricResult.unavailable("LPIPS", "weight file alexnet-owt-7be5be79.pth not found in w", 2)
    rows = [Row("DiffPortrait3D", "recon", {"LPIPS": na, "SSIM": ok, "ID": partial}, pairs=2),
            Row("DiffPortrait3D", "novel", {"LPIPS": na, "SSIM": ok, "ID": ok}, pairs=2)]
    report = Report(rows, meta={"model": "tiny", "pairs": 2})
    cells = [torch.zeros(3, 32, 32), Image.new("RGB", (40, 40), (255, 0, 0)), torch.ones(3, 32, 32), torch.zeros(3, 64, 64)]
    paths = write_report(tmp_path / "rep", report, figure_rows=[cells, cells])
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["figure.png", "report.json", "report.md"]

    data = json.loads(paths["json"].read_text())
    assert data["columns"] == ["LPIPS", "SSIM", "ID"]
    assert data["rows"][0]["metrics"]["ID"]["count"] == 1 and data["rows"][0]["metrics"]["LPIPS"]["value"] is None

    md = paths["md"].read_text()
    assert "| Method | Split | LPIPS↓ | SSIM↑ | ID↑ |" in md
    assert "| DiffPortrait3D | recon | n/a [1] | 0.7000 | 0.9000 [2] |" in md
    assert "| DiffPortrait3D | novel | n/a [1] | 0.7000 | 0.7000 |" in md  # one footnote per distinct reason
    assert "[1] LPIPS: weight file alexnet-owt-7be5be79.pth not found" in md
    assert "[2] ID: no face found in 1 of 2 generated" in md

    fig = Image.open(paths["figure"])
    assert fig.width == 4 * 258 + 2 and fig.height > 2 * 258

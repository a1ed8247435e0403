"""The evaluation report: report.json (everything), report.md (the paper's table) and a figure.

Rows are (method, split) with a `MetricResult` per column. The table follows the paper's layout,
columns LPIPS↓ DISTS↓ SSIM↑ ID↑ FID↓ POSE↓ (extra metrics such as PSNR follow); a cell that is
n/a, or a mean over fewer images than the split has, carries a footnote with the reason. Every
file is written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path
from ..media import grid, save_image, tensor_to_pil
from .base import MetricResult

# column -> (arrow, decimals)
COLUMNS = {"LPIPS": ("↓", 4), "DISTS": ("↓", 4), "SSIM": ("↑", 4), "ID": ("↑", 4), "FID": ("↓", 2), "POSE": ("↓", 2),
           "PSNR": ("↑", 2), "ID-retrieval": ("↑", 3), "seam ratio": ("→1", 3), "loop closure": ("→1", 3),
           "flicker ratio": ("↓", 3)}
FIGURE_LABELS = ("reference", "condition", "generated", "ground truth")


@dataclass
class Row:
    method: str
    split: str  # "recon" (target view = reference view) or "novel"
    results: dict[str, MetricResult]
    pairs: int = 0


@dataclass
class Report:
    rows: list[Row]
    meta: dict = field(default_factory=dict)  # model, data, steps, seed, weights folder, ...

    def columns(self) -> list[str]:
        present = {name for r in self.rows for name in r.results}
        known = [c for c in COLUMNS if c in present]
        return known + sorted(present - set(COLUMNS))

    def to_dict(self) -> dict:
        return {"meta": self.meta, "columns": self.columns(),
                "rows": [{"method": r.method, "split": r.split, "pairs": r.pairs,
                          "metrics": {k: v.to_dict() for k, v in r.results.items()}} for r in self.rows]}

    def markdown(self) -> str:
        cols = self.columns()
        notes: list[str] = []

        def footnote(text: str) -> str:
            if text not in notes:
                notes.append(text)
            return f"[{notes.index(text) + 1}]"

        head = "| Method | Split | " + " | ".join(f"{c}{COLUMNS.get(c, ('', 0))[0]}" for c in cols) + " |"
        lines = [head, "|" + "---|" * (len(cols) + 2)]
        for r in self.rows:
            cells = []
            for c in cols:
                res = r.results.get(c)
                if res is None:
                    cells.append("–")
                elif res.value is None:
                    cells.append(f"n/a {footnote(f'{c}: {res.reason}')}")
                else:
                    cell = f"{res.value:.{COLUMNS.get(c, ('', 4))[1]}f}"
                    cells.append(cell + (f" {footnote(f'{c}: {res.reason}')}" if res.reason else ""))
            lines.append(f"| {r.method} | {r.split} | " + " | ".join(cells) + " |")
        out = ["# DiffPortrait3D evaluation", ""]
        out += [f"- {k}: {v}" for k, v in self.meta.items()]
        out += ["", *lines, ""]
        if notes:
            out += [f"[{i + 1}] {t}" for i, t in enumerate(notes)] + [""]
        backends = {c: res.backend for r in self.rows for c, res in r.results.items() if res.backend}
        if backends:
            out += ["Backends: " + "; ".join(f"{c}: {b}" for c, b in backends.items()), ""]
        out += ["recon: the target view is the reference view; novel: another view of the same subject; orbit: views "
                "along a closed path (metrics/orbit.py). ↓ lower is better, ↑ higher is better, →1 best at 1. "
                "SSIM/PSNR on images in [0, 1]; POSE in degrees.", ""]
        return "\n".join(out)


def figure(rows: Sequence[Sequence], labels: Sequence[str] = FIGURE_LABELS, size: int = 256) -> Image.Image:
    """A labelled contact sheet: one row per example, columns as `labels` (reference | condition |
    generated | ground truth). Cells are PIL images or (3, H, W) tensors in [-1, 1]."""
    cells = [[(tensor_to_pil(c) if isinstance(c, torch.Tensor) else c).convert("RGB").resize((size, size)) for c in row]
             for row in rows]
    sheet = grid(cells)
    # media.grid tiles equal cells, so the label strip is a grid of its own stacked on top
    font = _font(max(10, size // 14))
    tags = []
    for text in labels:
        tag = Image.new("RGB", (size, max(16, size // 8)), (255, 255, 255))
        ImageDraw.Draw(tag).text((6, 2), text, fill=(0, 0, 0), font=font)
        tags.append(tag)
    head = grid([tags])
    out = Image.new("RGB", (max(sheet.width, head.width), sheet.height + head.height), (255, 255, 255))
    out.paste(head, (0, 0))
    out.paste(sheet, (0, head.height))
    return out


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def write_report(out_dir: str | Path, report: Report, figure_rows: Sequence[Sequence] | None = None,
                 figure_labels: Sequence[str] = FIGURE_LABELS) -> dict[str, Path]:
    """Write report.json, report.md and (given figure rows) figure.png into out_dir, each atomically."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n")
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(report.markdown(), encoding="utf-8")
    if figure_rows:
        paths["figure"] = save_image(figure(figure_rows, figure_labels), out_dir / "figure.png")
    return paths


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

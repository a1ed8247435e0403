"""Nothing shipped names the machine that built it: no absolute filesystem paths in the package's
data files (the miniature model's configs, its recipe log) or in the docs' logs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "diffportrait3d"
# a POSIX path under a machine's top-level folders, a home folder shorthand, or a Windows drive
ABSOLUTE = re.compile(r"(?<![\w.:/])/(?:home|root|work|tmp|Users|mnt|var|opt|srv|data|scratch)/[\w.-]|~/[\w.-]|\b[A-Za-z]:\\\\")
TEXT = {".json", ".tsv", ".csv", ".txt", ".md", ".yaml", ".yml", ".cfg"}


def shipped_text_files():
    data = [p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix in TEXT]
    logs = [p for p in (ROOT / "docs").rglob("*") if p.is_file() and p.suffix in {".tsv", ".csv", ".json", ".txt"}]
    return data + logs


def test_the_pattern_catches_machine_paths():
    bad = ['"_name_or_path": "/work/mini_run3/noise3d/model"', "/home/alice/run", "~/runs/x", "C:\\\\Users\\\\bob"]
    good = ['"_class_name": "UNet2DConditionModel"', "https://huggingface.co/a/b", "stable-diffusion-v1-5/stable-diffusion-v1-5",
            "vae\t1315\t0.045", "a/work/b"]
    assert all(ABSOLUTE.search(s) for s in bad)
    assert not any(ABSOLUTE.search(s) for s in good)


def test_no_absolute_paths_in_shipped_files():
    files = shipped_text_files()
    assert any(p.name == "model_index.json" for p in files)  # the shipped model is among them
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files
             for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if ABSOLUTE.search(line)]
    assert not found, "absolute paths in shipped files:\n" + "\n".join(found)

"""Nothing shipped names the machine that built it: no absolute filesystem paths in the package's
data files (the miniature model's configs, its recipe log) or in the docs' logs. And every relative link
in the README and docs/ resolves: no page shows a figure that is gone."""

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


# every relative link and image in the README and docs/ must point at a file that exists (and, for a
# `page.md#anchor` link, at a heading of that page): moved or deleted figures and pages fail here
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors: a heading lowercased, punctuation dropped, spaces turned into hyphens."""
    heads = [line.lstrip("#").strip() for line in FENCED.sub("", text).splitlines() if re.match(r"#{1,6} ", line)]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    text = page.read_text()
    bad = []
    for target in LINK.findall(INLINE_CODE.sub("", FENCED.sub("", text))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            bad.append(f"{page.relative_to(root)}: {target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file.read_text()):
            bad.append(f"{page.relative_to(root)}: {target} (no such heading)")
    return bad


def test_the_link_check_catches_broken_links(tmp_path):
    (tmp_path / "fig.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text("# The `dp3d` page\n![ok](fig.png) [ok](#the-dp3d-page) [web](https://example.com/x.png)\n"
                    "`[not a link](gone.png)`\n```\n# not a heading\n[nor a link](gone.png)\n```\n"
                    "![gone](docs/gone.png) [bad anchor](page.md#nowhere) [code](#not-a-heading)\n")
    assert broken_links(page, tmp_path) == ["page.md: docs/gone.png (no such file)",
                                            "page.md: page.md#nowhere (no such heading)",
                                            "page.md: #not-a-heading (no such heading)"]


def test_every_link_in_the_docs_resolves():
    pages = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    bad = [b for page in pages for b in broken_links(page)]
    assert not bad, "broken links:\n" + "\n".join(bad)

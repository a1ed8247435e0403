"""The package's import structure: no import circles, and no module importing from a layer above its own.

Layers, lowest first. A module may import its own folder's modules and any lower layer's, never a
sibling folder's on its own layer nor a higher layer's:
  0  the package root's modules (errors, atomic, media, preflight, batch_render): plumbing for all
  1  cameras: EG3D labels, paths and camera math (numpy and torch)
  2  head (the procedural renderer), faces (detection, landmarks, head pose), models (the networks)
  3  data (datasets, `dp3d synth`), conditions (condition images for a camera path)
  4  metrics (they score renders with faces, data and conditions), pipeline (sampling with the models)
  5  lift (3D from views), convert (the official checkpoint), training (stages over pipeline, data, metrics)
  6  app (the one flow every front end shares)
  7  cli (argument parsing and printing)
Imports inside functions count too: a lazy import still ties two modules together. The package's own
__init__ is exempt: it is the lazy facade diffusers looks components up in, above everything.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "diffportrait3d"
LAYERS = [[""], ["cameras"], ["head", "faces", "models"], ["data", "conditions"], ["metrics", "pipeline"],
          ["lift", "convert", "training"], ["app"], ["cli"]]
RANK = {folder: rank for rank, folders in enumerate(LAYERS) for folder in folders}


def modules() -> dict[str, tuple[Path, bool]]:
    """dotted name -> (file, is a package __init__)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path, package)
    return out


def import_graph() -> dict[str, list[tuple[str, int]]]:
    """module -> [(imported module of the package, line)], every import statement anywhere in the file."""
    mods = modules()
    graph = {}
    for name, (path, package) in mods.items():
        here = name if package else name.rsplit(".", 1)[0]
        edges = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            edges += [(t, node.lineno) for t in targets if t in mods and t != name]
        graph[name] = edges
    return graph


def folder(module: str) -> str:
    """The layer folder of a module: the first name below the package ('' for the root's own modules)."""
    parts = module.split(".")
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir():
        return ""
    return parts[1] if len(parts) > 1 else ""


def where(module: str, line: int) -> str:
    path, _ = modules()[module]
    return f"{path.relative_to(PACKAGE.parent.parent).as_posix()}:{line}"


def find_cycles(graph) -> list[list[tuple[str, int]]]:
    """One circle per back edge met in a depth-first walk, as [(module, line of its import of the next)]."""
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        for target, line in graph[m]:
            stack.append((m, line))
            if state.get(target) == "open":
                start = next(i for i, (s, _) in enumerate(stack) if s == target)
                cycles.append(list(stack[start:]))
            elif target not in state:
                visit(target)
            stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return cycles


def test_every_folder_has_a_layer():
    folders = {folder(m) for m in modules() if m != "diffportrait3d"}
    assert folders <= set(RANK), f"give these folders a layer in tests/test_architecture.py: {sorted(folders - set(RANK))}"


def test_no_import_circle():
    cycles = find_cycles(import_graph())
    described = [" -> ".join(f"{m} ({where(m, line)})" for m, line in c) + f" -> {c[0][0]}" for c in cycles]
    assert not cycles, "import circles (each module, and where it imports the next):\n" + "\n".join(described)


def test_no_upward_or_sideways_import():
    bad = []
    for m, edges in import_graph().items():
        if m == "diffportrait3d":
            continue
        for target, line in edges:
            a, b = folder(m), folder(target)
            if a != b and RANK.get(b, -1) >= RANK.get(a, -1):
                bad.append(f"{where(m, line)} imports {target}: {a or 'the root'} (layer {RANK.get(a)}) may not "
                           f"import {b or 'the root'} (layer {RANK.get(b)})")
    assert not bad, "imports against the layers (see tests/test_architecture.py):\n" + "\n".join(bad)

"""View-condition images: camera paths (or a folder, or a video) -> the images that carry the cameras.

Cameras live in `diffportrait3d.cameras`, the procedural head in `diffportrait3d.head` and face
alignment in `diffportrait3d.faces`. The old module paths below still import, so code written
before the move keeps working.
"""

import importlib
import sys

_MOVED = {"cameras": "diffportrait3d.cameras.eg3d", "trajectories": "diffportrait3d.cameras.trajectories",
          "head": "diffportrait3d.head", "crop": "diffportrait3d.faces.crop"}


def __getattr__(name):  # `from diffportrait3d.conditions import cameras`
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    raise AttributeError(name)


class _MovedFinder:
    """Resolves `diffportrait3d.conditions.<old>[.sub]` to the module's new home."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        prefix = __name__ + "."
        if not fullname.startswith(prefix):
            return None
        old, _, rest = fullname[len(prefix):].partition(".")
        if old not in _MOVED:
            return None
        module = importlib.import_module(_MOVED[old] + ("." + rest if rest else ""))
        sys.modules[fullname] = module
        return module.__spec__


sys.meta_path.append(_MovedFinder())

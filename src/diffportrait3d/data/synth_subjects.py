"""Re-render the subjects of a `dp3d synth` dataset (from its subjects.json) at any camera: the
ground truth that render-and-compare metrics and the miniature-world tests measure against."""

import json
from functools import lru_cache
from pathlib import Path

from ..cameras import camera_label
from ..head import Expression, Identity, build_scene, render_scene
from ..media import image_to_tensor


class SynthSubjects:
    def __init__(self, root):
        path = Path(root) / "subjects.json"
        self.plans = json.loads(path.read_text()) if path.is_file() else None

    def __bool__(self):
        return self.plans is not None

    @property
    def names(self) -> list[str]:
        return sorted(self.plans) if self.plans else []

    @lru_cache(maxsize=64)
    def _scene(self, subject: str, frame: int):
        plan = self.plans[subject]
        f = plan["frames"][frame]
        identity = Identity.from_dict(plan["identity"]) if "identity" in plan else Identity.sample(plan["identity_seed"])
        return build_scene(identity, Expression(**f["expression"])), tuple(f["light"])

    def renderer(self, subject: str, frame: int = 0, res: int = 64, ssaa: int | None = None):
        """render(yaw, pitch) -> (3, res, res) tensor in [-1, 1] of that subject and frame."""
        scene, light = self._scene(subject, frame)

        def render(yaw: float, pitch: float):
            return image_to_tensor(render_scene(scene, camera_label(yaw, pitch), res, light=light, ssaa=ssaa).pil())
        return render


def frame_number(frame: str) -> int:
    """'frame03' -> 3 (synth's folder names); '0' -> 0."""
    digits = "".join(c for c in frame if c.isdigit())
    return int(digits) if digits else 0

"""Twin carriers: one identity rendered twice at one camera, the second with its hair recoloured.

The view ControlNet should read the camera from a carrier's shape, whatever its colours. The miniature model
read grey-haired carriers 30-60 degrees off (docs/lab/2026-12-07-grey-carriers.md) and more grey carriers in
training did not help; a twin pair lets the view stage ask for it directly: the same residuals for both twins.
"""

from dataclasses import replace

import numpy as np
import torch

from ..head import Expression, Identity, render_head
from ..media import image_to_tensor


def recoloured_hair(rng: np.random.Generator) -> tuple:
    """Half grey levels (the carriers misread), half any colour."""
    if rng.random() < 0.5:
        return (float(rng.uniform(0.3, 0.95)),) * 3
    return tuple(float(c) for c in rng.uniform(0.05, 0.95, 3))


def render_twins(label, res: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(carrier as drawn, the same carrier with new hair colour), (3, res, res) each in [-1, 1]."""
    seed = int(rng.integers(2**31))
    identity, expression = Identity.sample(seed), Expression.sample(seed)
    twin = replace(identity, hair_colour=recoloured_hair(rng))
    return tuple(image_to_tensor(render_head(x, label, res, expression=expression).pil()) for x in (identity, twin))

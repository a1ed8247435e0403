"""The guided noise prediction of ALL views at one step: the unit the denoising loop calls.

`grouped_eps` splits the N views into independent consecutive groups of `group_size` (the
release denoises views 1..8, 9..16, ... separately, one reference shared by all). Variants with
other view groupings (e.g. overlapping windows) take the same arguments and return the same shape.
"""

from dataclasses import dataclass, replace

import torch

from ..models.denoiser import Networks, guided_eps, shared_reference_bank
from ..models.reference_attention import ReferenceBank


@dataclass
class ViewConditions:
    """Everything a step needs besides the latents and the timestep; fixed for a whole render."""

    context: torch.Tensor         # (1, L, D) prompt embedding (the empty prompt)
    ref_latents: torch.Tensor     # (R, C, h, w) clean latents of the reference image(s), seen by every view
    control_images: torch.Tensor  # (N, 3, H, W) one condition image per view, in [-1, 1]
    guidance_scale: float = 3.0
    control_scale: float = 1.0
    # the cameras, for a position bias centred through them (models/reference_position.py); None: not known
    reference_labels: torch.Tensor | None = None  # (R, 25) one per reference
    labels: torch.Tensor | None = None            # (N, 25) one per view

    def select(self, views) -> "ViewConditions":
        """The same conditions for a subset of the views (a window), indices into the N views."""
        labels = None if self.labels is None else self.labels[views]
        return replace(self, control_images=self.control_images[views], labels=labels)

    def cameras(self, views: slice):
        """(reference labels (1, R, 25), labels of `views`) for the read path's position bias, or None."""
        if self.labels is None or self.reference_labels is None:
            return None
        return self.reference_labels[None], self.labels[views]

    def reference_tokens(self, nets: Networks, t) -> ReferenceBank:
        """The reference UNet's tokens at timestep t, batch 1: shared by every view and group."""
        return shared_reference_bank(nets, self.ref_latents, t, self.context)


def grouped_eps(nets: Networks, x: torch.Tensor, t, cond: ViewConditions, group_size: int = 8,
                bank: ReferenceBank | None = None) -> torch.Tensor:
    """Guided eps (N, C, h, w) of all N views x (N, C, h, w) at timestep t.

    Views [0, g), [g, 2g), ... are denoised as independent groups (the view modules attend within a
    group only). `bank`: reference tokens to use (e.g. reused from an earlier step); computed for
    t when None, once for all groups.
    """
    bank = cond.reference_tokens(nets, t) if bank is None else bank
    n = x.shape[0]
    return torch.cat([
        guided_eps(nets, x[i : i + group_size], t, cond.context, cond.ref_latents, cond.control_images[i : i + group_size],
                   cond.guidance_scale, bank=bank, control_scale=cond.control_scale,
                   cameras=cond.cameras(slice(i, i + group_size)))[0]
        for i in range(0, n, group_size)])

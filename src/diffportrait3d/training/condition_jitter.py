"""Colour jitter of view-condition images while the view ControlNet trains.

The condition image carries one thing: the camera. A ControlNet trained on renders of random identities can
also learn what a typical carrier looks like (dark hair framing a lighter face) and misread a carrier that does
not (the miniature model read grey short hair 30-45 degrees off; docs/lab/2026-12-06-one-recipe.md). Drawing the
carrier's colours anew for every sample (channel order, grey, per-channel gain, contrast, brightness) leaves only
what is the same in all of them, the shape and shading that say where the camera is.
"""

import torch


def jitter_conditions(cond: torch.Tensor, seeds: list[int], strength: float) -> torch.Tensor:
    """`cond` (N, 3, H, W) in [-1, 1], one seed per row (the row's jitter depends on its seed only);
    strength 0 returns `cond`, 1 the full ranges below."""
    if strength <= 0:
        return cond
    out = []
    for x, seed in zip(cond, seeds):
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + 0xC0) % 2**63)
        u = torch.rand(6, generator=g)
        x = x[torch.randperm(3, generator=g)]
        if u[0] < 0.3 * strength:
            x = x.mean(0, keepdim=True).expand(3, -1, -1)
        gain = torch.exp((torch.rand(3, 1, 1, generator=g) - 0.5) * 0.8 * strength)  # x0.67-1.5 per channel
        contrast = float(torch.exp((u[1] - 0.5) * 1.0 * strength))  # x0.6-1.65 about the mean
        x = (x + 1) * gain - 1
        mean = x.mean()
        x = (x - mean) * contrast + mean + float(u[2] - 0.5) * 0.4 * strength
        out.append(x.clamp(-1, 1))
    return torch.stack(out).to(cond.dtype)

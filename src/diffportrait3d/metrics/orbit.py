"""Orbit consistency: does a sequence of views along a camera path change smoothly?

The change between two views is their mean absolute pixel difference (images (N, 3, H, W) in
[-1, 1]). Along a path with evenly spaced cameras, neighbouring changes are alike, so:

- seam ratio: mean change across group boundaries (views G-1 -> G, 2G-1 -> 2G, ...: where the
  release's independent groups meet) / median change within groups. 1 = no seam; > 1 = a jump.
- loop closure: change from the last view to the first / median neighbour change. For a closed
  path whose last camera is one step before the first, 1 is ideal; much larger = the orbit does not
  return to where it began.
- flicker ratio: mean neighbour change of the generated views / that of the ground truth at the
  same cameras. 1 = as steady as the truth; > 1 = views jitter more than the camera motion explains.
"""

import torch


def view_changes(views: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N-1,) mean absolute difference of each view and the next."""
    v = views.float()
    return (v[1:] - v[:-1]).abs().flatten(1).mean(1)


def _change(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


def seam_ratio(views: torch.Tensor, group_size: int) -> float:
    n = views.shape[0]
    if n <= group_size:
        raise ValueError(f"a seam needs more views than one group: {n} views, groups of {group_size}")
    d = view_changes(views)  # d[i]: view i -> i+1; a boundary is where i+1 starts a group
    at_seam = torch.tensor([(i + 1) % group_size == 0 for i in range(n - 1)])
    if at_seam.all():
        raise ValueError("groups of 1 view have no within-group neighbours to compare a seam with")
    return float(d[at_seam].mean() / d[~at_seam].median().clamp_min(1e-12))


def loop_closure(views: torch.Tensor) -> float:
    if views.shape[0] < 3:
        raise ValueError("loop closure needs at least 3 views")
    return _change(views[-1], views[0]) / float(view_changes(views).median().clamp_min(1e-12))


def flicker_ratio(views: torch.Tensor, truth: torch.Tensor) -> float:
    if views.shape != truth.shape:
        raise ValueError(f"generated {tuple(views.shape)} and ground truth {tuple(truth.shape)} differ in shape")
    return float(view_changes(views).mean() / view_changes(truth).mean().clamp_min(1e-12))


def orbit_metrics(views: torch.Tensor, group_size: int, truth: torch.Tensor | None = None, closed: bool = False) -> dict:
    """The metrics that apply to this path: seam (more views than a group), loop (closed), flicker (truth)."""
    out = {}
    if views.shape[0] > group_size:
        out["seam ratio"] = seam_ratio(views, group_size)
    if closed:
        out["loop closure"] = loop_closure(views)
    if truth is not None:
        out["flicker ratio"] = flicker_ratio(views, truth)
    return out

"""Which views are denoised together at each step, and how overlapping predictions are fused.

The view modules attend across the views of one group only, so independent groups of G views (the
release) leave a seam at every group boundary and an orbit that returns to its start has no reason
to end where it began. The schedules here (plain functions: views, step -> list of windows, a
window being a list of view indices) are the candidates measured in benchmarks/bench_orbits.py:

- groups:  [0..G-1], [G..2G-1], ...: the release, exact; every view is in one window.
- windows: overlapping windows of G views, `overlap` views shared by neighbours; the eps
           predictions of a view are averaged with triangular weights (AnimateDiff's uniform
           context schedule, FreeNoise's weighted fusion). Costs ceil(N / (G - overlap)) windows.
- shifted: groups whose boundaries move by G/2 on every other step, so information crosses every
           boundary at no extra cost (each view is in exactly one window per step).
With `loop`, windows wrap around (view N-1 is next to view 0): closed paths (360 deg, back and
forth). Two extras combine with any schedule: `anchors` (a few views spread over the path are
rendered first and every view then attends to them as extra references, paper eq. 5) and a noise
prior over the views, for the initial latent and for every DDIM step: `noise="freenoise"` (the
noise of every later group is a fixed shuffle of the first group's, FreeNoise's noise
rescheduling), `noise="mixed"` (every view's noise shares a common part, PYoCo's mixed noise
prior), `noise="progressive"` (neighbouring views along the path get correlated noise, the
correlation decaying with the distance along the path and wrapping around closed paths: PYoCo's
progressive prior, made stationary so it has no start, no end and so no seam) or `noise="camera"`
(the correlation decays with the angle between the views' cameras, whatever their order or spacing).
"""

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from ..cameras.eg3d import camera_centres
from ..errors import UserError

METHODS = ("groups", "windows", "shifted")
NOISES = ("independent", "freenoise", "mixed", "progressive", "camera")
CORRELATION = {"mixed": 0.5, "progressive": 0.98, "camera": 0.95}  # noise correlation: any two views / neighbours / cameras CAMERA_STEP apart
CAMERA_STEP = 10.0  # degrees
DEFAULT = "shifted+camera"  # for paths longer than one group: the best of benchmarks/bench_orbits.py (README: Long orbits)


@dataclass(frozen=True)
class ViewPlan:
    method: str = "groups"       # groups | windows | shifted (see the module docstring)
    group_size: int = 8          # G: views per window (the view modules' group)
    overlap: int | None = None   # windows: views shared by neighbouring windows (None: G // 4, at least 1)
    loop: bool | None = None     # wrap windows around; None: detect from the cameras (first ~ last)
    anchors: int = 0             # views rendered first and attended to by all (0: none)
    noise: str = "independent"   # independent | freenoise | mixed | progressive | camera
    correlation: float | None = None  # mixed / progressive / camera: None is CORRELATION[noise]

    def __post_init__(self):
        if self.method not in METHODS:
            raise UserError(f"view method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.noise not in NOISES:
            raise UserError(f"noise must be one of {', '.join(NOISES)}, got {self.noise!r}")
        if self.group_size < 1 or self.anchors < 0:
            raise UserError("group size must be >= 1 and anchors >= 0")
        if self.overlap is not None and not 0 <= self.overlap < self.group_size:
            raise UserError(f"overlap must be in 0..{self.group_size - 1}, got {self.overlap}")
        if self.correlation is not None and self.noise not in CORRELATION:
            raise UserError(f"a noise correlation needs +mixed, +progressive or +camera, not {self.noise}")
        if self.correlation is not None and not 0 <= self.correlation < 1:
            raise UserError(f"noise correlation must be a number in [0, 1), got {self.correlation}")

    @classmethod
    def parse(cls, spec: str, **kw) -> "ViewPlan":
        """'groups', 'windows', 'shifted+anchors', 'windows+freenoise+anchors', 'shifted+progressive=0.8', ... -> ViewPlan."""
        parts = [p for p in str(spec).lower().split("+") if p]
        fields = dict(kw)
        for p in parts[1:]:
            p, _, value = p.partition("=")
            if p == "anchors" and not value:
                fields["anchors"] = fields.get("anchors") or 4
            elif p in NOISES[1:] and (not value or p in CORRELATION):
                fields["noise"] = p
                if value:
                    try:
                        fields["correlation"] = float(value)
                    except ValueError:
                        raise UserError(f"noise correlation must be a number in [0, 1), got {value!r} in {spec!r}") from None
            else:
                raise UserError(f"unknown view option {p!r} in {spec!r}: use anchors, freenoise, mixed[=C], progressive[=C] or camera[=C]")
        return cls(method=parts[0] if parts else "", **fields)

    @property
    def noise_correlation(self) -> float:
        return CORRELATION[self.noise] if self.correlation is None else self.correlation

    @property
    def name(self) -> str:
        noise = [] if self.noise == "independent" else [self.noise + ("" if self.correlation is None else f"={self.correlation:g}")]
        return "+".join([self.method] + noise + (["anchors"] if self.anchors else []))

    def windows(self, n: int, step: int = 0, loop: bool = False) -> list[list[int]]:
        """Windows of the `step`-th denoising step for n views."""
        if self.method == "groups":
            return group_windows(n, self.group_size)
        if self.method == "shifted":
            return shifted_windows(n, self.group_size, step, loop)
        overlap = max(1, self.group_size // 4) if self.overlap is None else self.overlap
        return sliding_windows(n, self.group_size, overlap, loop)

    def noise_prior(self, n: int, loop: bool = False, labels=None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The plan's noise prior for n views: i.i.d. noise (view axis first) -> the prior's noise. The
        correlation's square root is taken once here, not at every step. `camera` without camera
        labels falls back to `progressive` (views taken as CAMERA_STEP apart)."""
        rho = self.noise_correlation if self.noise in CORRELATION else 0.0
        if self.noise == "freenoise":
            return lambda z: freenoise(z, self.group_size)
        if self.noise == "mixed":
            return lambda z: mixed_noise(z, rho)
        if self.noise not in ("progressive", "camera") or n < 2 or rho == 0:
            return lambda z: z
        kernel = camera_correlation(labels, rho) if self.noise == "camera" and labels is not None else path_correlation(n, rho, loop)
        root = kernel_root(kernel)
        return lambda z: correlate(z, root)


def plan_for(views, group_size: int, n: int, labels=None) -> tuple[ViewPlan, bool]:
    """The pipeline's `views` argument (None, a name like "shifted+anchors", or a ViewPlan) -> (plan, loop).
    None is DEFAULT for more than one group of views and the release's single group otherwise."""
    if views is None:
        views = DEFAULT if n > group_size else "groups"
    plan = views if isinstance(views, ViewPlan) else ViewPlan.parse(views, group_size=group_size)
    return plan, (is_closed_path(labels) if plan.loop is None else plan.loop)


def anchor_references(pipe, refs, conds, proxies, labels, plan: ViewPlan, loop: bool, **kwargs) -> torch.Tensor:
    """Render `plan.anchors` views spread over the path as one group; return refs + them, (R+A, 3, H, W) in [-1, 1]."""
    idx = anchor_indices(conds.shape[0], plan.anchors, loop)
    anchors = pipe(refs, conds[idx], proxy_images=None if proxies is None else proxies[idx],
                   condition_labels=None if labels is None else np.asarray(labels)[idx],
                   views=replace(plan, anchors=0), output_type="pt", **kwargs).images
    return torch.cat([refs, anchors.to(refs) * 2 - 1])


def group_windows(n: int, g: int) -> list[list[int]]:
    return [list(range(i, min(i + g, n))) for i in range(0, n, g)]


def sliding_windows(n: int, g: int, overlap: int, loop: bool = False) -> list[list[int]]:
    """Windows of g views starting every g - overlap views; open paths end exactly at view n-1."""
    if n <= g:
        return [list(range(n))]
    stride = g - overlap
    if loop:
        return [[(s + j) % n for j in range(g)] for s in range(0, n, stride)]  # the last one overlaps view 0
    starts = list(range(0, n - g + 1, stride))
    if starts[-1] != n - g:
        starts.append(n - g)
    return [list(range(s, s + g)) for s in starts]


def shifted_windows(n: int, g: int, step: int, loop: bool = False) -> list[list[int]]:
    """Groups of g views, shifted by g // 2 on odd steps (wrapping around on closed paths)."""
    offset = (step % 2) * (g // 2)
    if n <= g or offset == 0:
        return group_windows(n, g)
    if loop:
        order = [(offset + i) % n for i in range(n)]
        return [order[i : i + g] for i in range(0, n, g)]
    return [list(range(offset))] + [list(range(i, min(i + g, n))) for i in range(offset, n, g)]


def window_weights(size: int) -> torch.Tensor:
    """Triangular weights: a view counts most in the window where it sits in the middle."""
    j = torch.arange(size, dtype=torch.float64)
    return torch.minimum(j + 1, size - j)


def fuse(eps_fn: Callable, x: torch.Tensor, windows: list[list[int]]) -> torch.Tensor:
    """eps for all views: eps_fn(indices) -> eps of those views, weighted average where windows overlap.

    A view covered by one window gets that window's eps unchanged (weight exactly 1), so
    non-overlapping schedules equal the plain concatenation bit for bit.
    """
    n = x.shape[0]
    total = torch.zeros(n, dtype=torch.float64)
    for w in windows:
        total[w] += window_weights(len(w))
    if (total == 0).any():
        raise ValueError(f"views {torch.nonzero(total == 0).flatten().tolist()} are in no window")
    out = torch.zeros_like(x)
    for w in windows:
        idx = torch.as_tensor(w, device=x.device)
        weight = (window_weights(len(w)) / total[w]).to(x.device, x.dtype).view(-1, *[1] * (x.dim() - 1))
        out.index_add_(0, idx, eps_fn(idx) * weight)
    return out


def freenoise(noise: torch.Tensor, g: int, seed: int = 0) -> torch.Tensor:
    """Views of group k >= 1 get a fixed shuffle of group 0's noise (FreeNoise's noise rescheduling),
    so overlapping windows start from correlated noise. The shuffles depend on `seed` only."""
    n = noise.shape[0]
    if n <= g:
        return noise
    rng = np.random.default_rng(seed)
    src = np.concatenate([np.arange(g)] + [rng.permutation(g) for _ in range(1, -(-n // g))])[:n]
    return noise[torch.as_tensor(src, device=noise.device)]


def mixed_noise(noise: torch.Tensor, rho: float) -> torch.Tensor:
    """PYoCo's mixed noise prior: sqrt(rho) * shared + sqrt(1 - rho) * own, per view still N(0, 1),
    any two views correlated by rho - (1 - rho) / (N - 1). Both parts come from `noise` itself: its mean over the views
    and the deviations from it are independent for i.i.d. Gaussians (so no extra random numbers)."""
    n = noise.shape[0]
    if n < 2:
        return noise
    mean = noise.mean(0, keepdim=True)
    shared, own = mean * n**0.5, (noise - mean) * (n / (n - 1)) ** 0.5
    return rho**0.5 * shared + (1 - rho) ** 0.5 * own


def progressive_noise(noise: torch.Tensor, rho: float, loop: bool = False) -> torch.Tensor:
    """Views correlated by rho between neighbours along the path (path_correlation)."""
    return noise if noise.shape[0] < 2 or rho == 0 else correlate(noise, kernel_root(path_correlation(noise.shape[0], rho, loop)))


def camera_noise(noise: torch.Tensor, labels, rho: float) -> torch.Tensor:
    """Views correlated by the angle between their cameras (camera_correlation)."""
    return noise if rho == 0 else correlate(noise, kernel_root(camera_correlation(labels, rho)))


def path_correlation(n: int, rho: float, loop: bool = False) -> np.ndarray:
    """(n, n): rho between neighbours, decaying with the distance d along the path: rho**d on open
    paths (a stationary AR(1), so no view is special), on closed ones the periodic Ornstein-Uhlenbeck
    kernel cosh(a (N/2 - d)) / cosh(a N/2) with e^-a = rho (d around the loop), written as
    (e^-ad + e^-a(N-d)) / (1 + e^-aN) so that long paths do not overflow."""
    i = np.arange(n)
    d = np.abs(i[:, None] - i[None, :]).astype(np.float64)
    a = -np.log(rho)
    return (np.exp(-a * d) + np.exp(-a * (n - d))) / (1 + np.exp(-a * n)) if loop else np.exp(-a * d)


def camera_correlation(labels, rho: float) -> np.ndarray:
    """(N, N) from the angle between the cameras (seen from the head's centre): rho at CAMERA_STEP
    degrees apart, exp(-angle / scale) in general, positive definite on the sphere (Gneiting 2013).
    A camera visited twice gets the same noise; a closed path needs no special case."""
    pos = camera_centres(labels)
    pos /= np.linalg.norm(pos, axis=1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip(pos @ pos.T, -1, 1)))
    return rho ** (angle / CAMERA_STEP)


def kernel_root(kernel: np.ndarray) -> np.ndarray:
    """S with S S^T = kernel, rows of unit norm (so each view's noise stays N(0, 1)): the symmetric
    square root, so repeated cameras (a singular kernel) need no jitter."""
    w, v = np.linalg.eigh(kernel)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return root / np.linalg.norm(root, axis=1, keepdims=True)  # unit variance despite rounding


def correlate(noise: torch.Tensor, root: np.ndarray) -> torch.Tensor:
    """i.i.d. N(0, 1) views -> noise_i = sum_j S_ij z_j, correlated by S S^T."""
    return torch.einsum("ij,j...->i...", torch.as_tensor(root, dtype=noise.dtype, device=noise.device), noise)


def anchor_indices(n: int, k: int, loop: bool = False) -> list[int]:
    """k views spread evenly over the path (ends included on open paths)."""
    k = min(k, n)
    pos = np.arange(k) * n / k if loop else np.linspace(0, n - 1, k)
    return sorted({int(round(p)) % n for p in pos})


def is_closed_path(labels) -> bool:
    """First camera ~ last camera: within 1.5 median neighbour steps (a 360 deg orbit that stops one
    step short, or a path that returns to its start)."""
    if labels is None or len(labels) < 3:
        return False
    pos = camera_centres(labels)
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    return bool(np.linalg.norm(pos[-1] - pos[0]) <= 1.5 * np.median(steps) + 1e-9)

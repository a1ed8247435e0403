"""What sets each view's global colour: `noise_mean` "keep" (the noise, as in the release), "remove" (the
noise without its spatial mean) or "colour_pull" (as "remove", and every step's clean-latent prediction
pulled towards the reference's mean colour; "reference" is its old name and still accepted).

Why "remove": at t = 999 the signal left in x_T is sqrt(a_999) = 0.069 of the clean latent, and the spatial
mean of white noise over h x h latents has std 1/h. At the miniature model's 16 x 16 latents the two
are the same size (0.0625 vs 0.069 x the image's mean), so the noise's own mean, not the reference or
the 3D-aware proxy, decides each view's global colour (background, skin tint: docs/lab/2026-12-04-take-five.md).
Without it x_T's mean is the proxy's. At SD1.5's 64 x 64 latents the effect is 4x smaller.

Why "colour_pull": even so the miniature model draws its views' colours towards the mean face's (measured at
the reference's own camera: face / background off by 8.8 / 6.9 on a 0-255 scale, while views of one head
differ from its reference by less in latent mean than the drawn views do from the truth, up to ~60 degrees
away). Like the "AdaIN" of reference-only control, it takes the reference's global statistics as the truth's,
here only the per-channel spatial mean of the predicted clean latent, and only where that holds: the gap is
measured on the views near the reference (weight 1 within 30 degrees of its viewing direction, 0 from 60), and
one shift, half that gap per step, moves every view of the render alike, so that near and far views do not
part in colour along an orbit. A render with no view near the reference is the "remove" run
(docs/lab/2026-12-05-take-ten.md). "keep" (default) is the release's noise, bitwise.

The pull's weights were tuned on the miniature model, so they are a model's setting (`ColourPull`, stored as
"colour_pull" in its model_index.json beside "noise_mean"); the defaults below serve a model folder without them.
"""

from dataclasses import asdict, dataclass, fields
from typing import Callable

import torch

from ..errors import UserError

NOISE_MEANS = ("keep", "remove", "colour_pull")
ALIASES = {"reference": "colour_pull"}  # the colour pull's first name, in older model folders and scripts


@dataclass(frozen=True)
class ColourPull:
    pull: float = 0.5            # the fraction of the prediction's mean-colour gap closed at each step (0.5 and 1 measured the same)
    full_degrees: float = 30.0   # views within this angle of a reference measure the gap with weight 1 ...
    none_degrees: float = 60.0   # ... and from this angle on not at all (linear in between)

    @classmethod
    def from_config(cls, value: dict | None) -> "ColourPull":
        """A model_index.json's "colour_pull" entry (None: the defaults); a UserError names an unknown key."""
        if value is None:
            return cls()
        known = {f.name for f in fields(cls)}
        if not isinstance(value, dict) or set(value) - known:
            raise UserError(f'model_index.json: "colour_pull" must be an object with keys {", ".join(sorted(known))}, got {value!r}')
        pull = cls(**{k: float(v) for k, v in value.items()})
        if not (0 <= pull.pull and 0 <= pull.full_degrees < pull.none_degrees):
            raise UserError(f'model_index.json: "colour_pull" needs pull >= 0 and 0 <= full_degrees < none_degrees, got {value!r}')
        return pull

    def to_config(self) -> dict:
        return asdict(self)


def canonical_noise_mean(name: str) -> str:
    """`name` in its current spelling ("reference" -> "colour_pull"); a UserError for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in NOISE_MEANS:
        raise UserError(f"noise_mean must be one of {', '.join(NOISE_MEANS)}, got {name!r}")
    return name


def with_noise_mean(prior: Callable[[torch.Tensor], torch.Tensor], noise_mean: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """`prior` (a view plan's noise transform), followed by removing each view's spatial mean if asked."""
    if noise_mean == "keep":
        return prior
    return lambda x: (y := prior(x)) - y.mean(dim=(-2, -1), keepdim=True)


def reference_pull(degrees: torch.Tensor | None, weights: ColourPull = ColourPull()) -> torch.Tensor | float:
    """Each view's weight from its angle (degrees) to the nearest reference, times `weights.pull`; `weights.pull`
    for every view without cameras."""
    if degrees is None:
        return weights.pull
    full, none = weights.full_degrees, weights.none_degrees
    return weights.pull * ((none - degrees) / (none - full)).clamp(0, 1)


def pull_to_reference_mean(eps_fn: Callable, alphas_cumprod: torch.Tensor, reference_mean: torch.Tensor,
                           pull: torch.Tensor | float = ColourPull.pull) -> Callable:
    """eps_fn(x, t) whose implied clean latents x0 = (x - sqrt(1 - a) eps) / sqrt(a) all have their per-channel
    spatial means moved by one shift: `pull` (a number, or one per view: the views' weights) times the weighted
    mean gap (mean(x0) - reference_mean (C,)); eps + sqrt(a / (1 - a)) * shift. One shift for every view, so that
    the colour the near views give back is not a step between near and far views. x is the scaled model input,
    sqrt(a) x0 + sqrt(1 - a) eps for DDPM- and sigma-type schedulers alike."""
    ref = reference_mean.reshape(1, -1, 1, 1)
    pull = torch.as_tensor(pull, dtype=torch.float32).reshape(-1, 1, 1, 1)
    if pull.max() == 0:  # no view near a reference: nothing to measure the gap on
        return eps_fn

    def fn(x, t):
        eps = eps_fn(x, t)
        a = alphas_cumprod[int(round(float(t)))].to(eps)
        gap = ((x - (1 - a).sqrt() * eps) / a.sqrt()).mean(dim=(-2, -1), keepdim=True) - ref.to(eps)
        w = pull.to(eps).expand(gap.shape[0], 1, 1, 1)
        shift = (w * gap).sum(0, keepdim=True) / w.sum() * w.max()
        return eps + (a / (1 - a)).sqrt() * shift

    return fn

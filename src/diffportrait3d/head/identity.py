"""Random identities for the procedural head: shape, colours, hair, accessories, light, backdrop.

All lengths are in EG3D world units (the head is about 0.4 wide; the default camera sees a
window about 0.58 wide at the face). Every field is a plain float/tuple so an identity can be
written to JSON and rebuilt (`Identity(**d)`).
"""

from dataclasses import asdict, dataclass, replace

import numpy as np

SKIN_TONES = np.array([(250, 220, 196), (238, 196, 162), (222, 172, 130), (196, 138, 98),
                       (160, 106, 72), (118, 76, 50), (84, 56, 40)], float) / 255
HAIR_COLOURS = np.array([(24, 20, 18), (58, 38, 26), (104, 70, 42), (150, 110, 62), (212, 178, 118),
                         (146, 64, 30), (160, 158, 152), (226, 224, 218)], float) / 255
DYED_HAIR = np.array([(60, 90, 190), (190, 70, 140), (70, 150, 120)], float) / 255
IRIS_COLOURS = np.array([(70, 42, 24), (110, 72, 40), (60, 110, 160), (80, 120, 70), (110, 110, 110)], float) / 255
HAIR_STYLES = ("bald", "buzz", "short", "fringe", "bob", "long", "bun", "curly")


@dataclass
class Identity:
    seed: int = 0
    # head shape
    head_width: float = 0.178  # half-width of the cranium
    head_height: float = 0.215
    head_depth: float = 0.228
    jaw_width: float = 0.135  # half-width of the lower face
    jaw_drop: float = 0.0  # longer (+) or shorter (-) lower face
    chin: float = 0.045  # chin size
    cheek: float = 0.06  # cheek fullness
    # features
    eye_spacing: float = 0.058  # half the distance between pupils
    eye_height: float = 0.045
    eye_size: float = 0.023
    brow_thickness: float = 0.007
    brow_tilt: float = 0.12  # radians, outer end down
    nose_length: float = 0.07
    nose_width: float = 0.02
    nose_projection: float = 0.045
    mouth_width: float = 0.044
    lip_thickness: float = 0.012
    ear_size: float = 0.055
    ear_angle: float = 0.25  # radians the ears stick out
    # colours (RGB in 0..1)
    skin: tuple = (0.87, 0.68, 0.51)
    lip_tint: tuple = (0.78, 0.42, 0.42)
    hair_colour: tuple = (0.23, 0.15, 0.10)
    iris: tuple = (0.27, 0.16, 0.09)
    clothes: tuple = (0.25, 0.35, 0.55)
    # hair
    hair_style: str = "short"
    hair_volume: float = 0.02
    hairline: float = 0.13  # height of the front hairline
    parting: float = 0.0  # sideways shift of fringe/parting (the only asymmetric shape parameter)
    # glasses
    glasses: bool = False
    glasses_colour: tuple = (0.1, 0.1, 0.1)
    glasses_round: float = 0.5  # 0 wide rectangular-ish, 1 round
    # scene
    light_azimuth: float = 0.4  # radians around y; 0 = from the front
    light_elevation: float = 0.6
    ambient: float = 0.35
    background_top: tuple = (0.75, 0.78, 0.82)
    background_bottom: tuple = (0.45, 0.48, 0.55)
    background_angle: float = 0.0  # radians the gradient is turned from vertical

    @classmethod
    def sample(cls, seed: int) -> "Identity":
        """A random identity, the same for the same seed on every machine."""
        rng = np.random.default_rng([int(seed), 0x1D])
        u = rng.uniform
        tone = u(0, len(SKIN_TONES) - 1)
        skin = _lerp_palette(SKIN_TONES, tone) * u(0.95, 1.05, 3)
        lip = np.clip(skin * np.array([0.86, 0.55, 0.55]) + np.array([0.08, 0.0, 0.02]) * u(0, 1), 0, 1)
        if rng.random() < 0.05:
            hair = DYED_HAIR[rng.integers(len(DYED_HAIR))]
        else:  # mostly dark hair, as in portrait datasets
            k = rng.choice(len(HAIR_COLOURS), p=[0.3, 0.25, 0.15, 0.08, 0.08, 0.06, 0.05, 0.03])
            hair = _lerp_palette(HAIR_COLOURS, min(k + u(0, 0.35), len(HAIR_COLOURS) - 1))
        style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[0.05, 0.08, 0.22, 0.15, 0.14, 0.18, 0.08, 0.10])]
        bg_hue = rng.uniform(0, 1, 3)
        top = 0.35 + 0.55 * bg_hue
        bottom = np.clip(top * u(0.45, 0.9) + u(-0.05, 0.05, 3), 0, 1)
        head_width = u(0.165, 0.19)
        return cls(
            seed=int(seed), head_width=head_width, head_height=u(0.2, 0.228), head_depth=u(0.215, 0.24),
            jaw_width=head_width * u(0.7, 0.86), jaw_drop=u(-0.015, 0.02), chin=u(0.035, 0.055), cheek=u(0.05, 0.07),
            eye_spacing=u(0.056, 0.066), eye_height=u(0.035, 0.05), eye_size=u(0.025, 0.03),
            brow_thickness=u(0.004, 0.01), brow_tilt=u(0.0, 0.3),
            nose_length=u(0.055, 0.075), nose_width=u(0.013, 0.02), nose_projection=u(0.025, 0.045),
            mouth_width=u(0.036, 0.052), lip_thickness=u(0.008, 0.016),
            ear_size=u(0.05, 0.065), ear_angle=u(0.15, 0.5),
            skin=_tup(np.clip(skin, 0, 1)), lip_tint=_tup(lip), hair_colour=_tup(hair),
            iris=_tup(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * u(0.8, 1.2)),
            clothes=_tup(rng.uniform(0.05, 0.85, 3)),
            hair_style=style, hair_volume=u(0.008, 0.035) if style != "curly" else u(0.04, 0.06),
            hairline=u(0.11, 0.16), parting=u(-0.04, 0.04),
            glasses=bool(rng.random() < 0.2), glasses_colour=_tup(rng.uniform(0.02, 0.5, 3)), glasses_round=u(0, 1),
            light_azimuth=u(-1.1, 1.1), light_elevation=u(0.1, 0.9), ambient=u(0.25, 0.45),
            background_top=_tup(top), background_bottom=_tup(bottom), background_angle=u(-0.6, 0.6),
        )

    def symmetric(self) -> "Identity":
        """The same person with every left/right asymmetry removed (parting, light, backdrop).

        Rendered at yaw +a and -a such an identity gives exact mirror images (up to expression
        gaze, which `Expression` keeps symmetric too when its `gaze_yaw` is 0).
        """
        return replace(self, parting=0.0, light_azimuth=0.0, background_angle=0.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Identity":
        """Inverse of to_dict, also after a JSON round trip (lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _lerp_palette(palette: np.ndarray, x: float) -> np.ndarray:
    i = int(np.clip(np.floor(x), 0, len(palette) - 2))
    f = float(np.clip(x - i, 0, 1))
    return palette[i] * (1 - f) + palette[i + 1] * f


def _tup(a) -> tuple:
    return tuple(float(v) for v in np.asarray(a).reshape(-1))

"""The head as primitives: skull, face, nose, ears, eyes, brows, lips, mouth, hair, glasses, torso.

Coordinates: EG3D world (y up, the face looks towards +z, the subject's left is +x). The head
sits so that the default EG3D camera frames it like an FFHQ crop: eyes a little above the image
centre, chin near the bottom fifth, the crown near the top edge.

Small features (eyes, brows, lips, glasses) are placed relative to the skin surface, found by
tracing the skin-only field, so they sit on the face whatever its random shape.
"""

from dataclasses import dataclass

import numpy as np
import torch

from .expression import Expression
from .identity import Identity
from .sdf import Field, Group, Prim, align_y, rotation

# the identity's lengths are designed at this head size; scaling the whole head to 1.15 frames it
# like an EG3D render at the default camera (dlib face box about 0.6 of the width, as EG3D's 0.63)
HEAD_SCALE = 1.15
SKIN_K = 0.05  # blend radius of the skin parts (cheeks, nose, ears melt into the head)


@dataclass
class Landmarks:
    nose_tip: np.ndarray  # (3,) world position, used by tests and the face crop framing
    eyes: np.ndarray  # (2, 3): subject's right eye (-x) then left eye (+x)
    mouth: np.ndarray  # (3,)


@dataclass
class Scene:
    field: Field
    identity: Identity
    expression: Expression
    landmarks: Landmarks
    gaze: np.ndarray  # (3,) unit direction the eyes look at
    eye_centers: np.ndarray  # (2, 3)
    eye_radius: float
    ear_prims: tuple  # primitive indices of the ears (inner-ear shading uses their local frame)


def _surface_z(groups: list[Group], xy: list[tuple]) -> np.ndarray:
    """z of the first surface hit looking along -z from the front at each (x, y)."""
    f = Field(groups)
    p = torch.tensor([[x, y, 0.6] for x, y in xy], dtype=torch.float32)
    t = torch.zeros(len(xy))
    for _ in range(80):
        d = f.distance(p + torch.tensor([0, 0, -1.0]) * t[:, None]).clamp_min(0)
        t = t + 0.9 * d
        if float(d.max()) < 1e-5:
            break
    return (0.6 - t).numpy().astype(float)


def _half(n, off):
    n = np.asarray(n, float)
    norm = np.linalg.norm(n)
    return (n / norm, off / norm)


def build_scene(identity: Identity, expression: Expression | None = None) -> Scene:
    idt, ex = identity, expression or Expression()
    skin = _skin(idt, ex)
    z = _surface_z([Group(skin, k=SKIN_K)], [(0, idt.eye_height - 0.01), (0, idt.eye_height - idt.nose_length)])
    nose, tip = _nose(idt, z[0], z[1])
    face = [Group(skin + nose, k=SKIN_K)]
    chin_bottom = _chin_y(idt, ex) - idt.chin
    nose_base = tip[1] - 0.012
    mouth_y = nose_base - (nose_base - chin_bottom) * 0.34
    z_mouth, z_eye, z_brow = _surface_z(face, [(0, mouth_y), (idt.eye_spacing, idt.eye_height),
                                                (idt.eye_spacing, idt.eye_height + 0.035)])
    lips, cavity, teeth = _mouth(idt, ex, mouth_y, z_mouth)
    eyes, openings, brows, eye_centers = _eyes(idt, ex, z_eye, z_brow)
    torso = Prim((0, -0.5, -0.05), (0.38 + 0.6 * (idt.head_width - 0.17), 0.18, 0.18), "clothes")
    groups = [Group(skin + nose, k=SKIN_K, carvers=[cavity] + openings),
              Group(lips, k=0.0, carvers=[cavity]),
              Group(_hair(idt), k=0.022),
              Group(eyes + brows + teeth + [torso] + _glasses(idt, eye_centers, idt.eye_size), k=0.0)]
    for p in {id(p): p for g in groups for p in g.prims + g.carvers}.values():  # shared carvers once
        _scale(p, HEAD_SCALE)
    for g in groups:  # blend radii scale too, or the skin thins and the eyeballs show through closed lids
        g.k *= HEAD_SCALE
    field = Field(groups)
    gaze = np.array([np.sin(ex.gaze_yaw) * np.cos(ex.gaze_pitch), np.sin(ex.gaze_pitch), np.cos(ex.gaze_yaw) * np.cos(ex.gaze_pitch)])
    ear_idx = tuple(i for i, p in enumerate(field.prims) if p.part == "ear")
    S = HEAD_SCALE
    marks = Landmarks(nose_tip=S * (tip + np.array([0, 0, idt.nose_width * 0.3])),
                      eyes=S * (eye_centers + [0, 0, idt.eye_size]), mouth=S * np.array([0, mouth_y, z_mouth]))
    return Scene(field, idt, ex, marks, gaze, S * eye_centers, S * idt.eye_size, ear_idx)


def _chin_y(idt: Identity, ex: Expression) -> float:
    return -0.2 - idt.jaw_drop - 0.02 * ex.mouth_open  # an open mouth drops the jaw


def _skin(idt: Identity, ex: Expression) -> list[Prim]:
    """Cranium, lower face, chin, brow ridge, neck and ears (all blended into one skin)."""
    hw, hh, hd, jw, drop, op = idt.head_width, idt.head_height, idt.head_depth, idt.jaw_width, idt.jaw_drop, ex.mouth_open
    eye_y = idt.eye_height
    prims = [
        Prim((0, 0.06, -0.03), (hw, hh, hd), "skin"),  # cranium
        # lower face from the cheekbones to the jaw line; cheek fullness widens it
        Prim((0, -0.075 - drop / 2 - 0.008 * op, 0.035), (jw + 0.4 * (idt.cheek - 0.05), 0.155 + drop / 2, 0.165), "skin"),
        Prim((0, _chin_y(idt, ex), 0.125), (idt.chin * 1.2, idt.chin, idt.chin), "skin"),
        Prim((0, eye_y + 0.035, 0.148), (0.1, 0.036, 0.05), "skin"),  # brow ridge
        Prim((0, -0.28, -0.035), (0.085 + 0.4 * (hw - 0.17), 0.17, 0.085), "skin"),  # neck
    ]
    for s in (-1, 1):
        prims.append(Prim((s * (hw + 0.008), eye_y - 0.035, -0.035), (0.012, idt.ear_size, idt.ear_size * 0.62), "ear",
                          rot=rotation(y=-s * idt.ear_angle, z=s * 0.12)))
    return prims


def _nose(idt: Identity, z_root: float, z_below: float) -> tuple[list[Prim], np.ndarray]:
    """A bridge from between the eyes to the tip, the tip, two nostril wings."""
    eye_y, w, proj = idt.eye_height, idt.nose_width, idt.nose_projection
    root = np.array([0, eye_y - 0.01, z_root - 0.012])
    tip = np.array([0, eye_y - idt.nose_length, z_below + proj])
    axis = tip - root
    prims = [Prim(tuple((root + tip) / 2), (w * 0.55, np.linalg.norm(axis) / 2 + 0.004, w * 0.7), "nose", rot=align_y(axis)),
             Prim(tuple(tip + [0, 0.004, -w * 0.5]), (w * 0.8, w * 0.75, w * 0.75), "nose")]
    for s in (-1, 1):
        prims.append(Prim((s * w * 0.85, tip[1] + 0.001, tip[2] - proj * 0.5 - 0.004), (w * 0.5, w * 0.42, w * 0.55), "nose"))
    return prims, tip


def _mouth(idt: Identity, ex: Expression, mouth_y: float, z_mouth: float):
    """Lips bent by the smile, the carved opening between them, and teeth behind."""
    lt, op = idt.lip_thickness, ex.mouth_open
    mw = idt.mouth_width * (1 + 0.15 * max(ex.smile, 0))  # a smile widens the mouth ...
    bend = 14.0 * ex.smile  # ... and lifts its corners
    gap = 0.002 + 0.028 * op
    lips = [Prim((0, mouth_y + gap / 2 + lt * 0.5, z_mouth - lt * 0.6), (mw, lt * 0.75, lt * 1.2), "lips", bend=bend),
            Prim((0, mouth_y - gap / 2 - lt * 0.55, z_mouth - lt * 0.7 - 0.006 * op), (mw * 0.85, lt * 0.85, lt * 1.25),
                 "lips", bend=bend * 0.7)]
    cavity = Prim((0, mouth_y, z_mouth + 0.005), (mw * 0.9, 0.002 + gap / 2 + 0.004 * op, 0.045), "mouth", bend=bend)
    teeth = [Prim((0, mouth_y + gap / 2 - 0.001, z_mouth - 0.02), (mw * 0.72, 0.008, 0.02), "teeth", bend=bend),
             Prim((0, mouth_y - gap / 2 - 0.004, z_mouth - 0.026), (mw * 0.62, 0.006, 0.018), "teeth", bend=bend)]
    return lips, cavity, teeth


def _eyes(idt: Identity, ex: Expression, z_eye: float, z_brow: float):
    """Eyeballs behind almond openings carved in the skin (closing = a thinner opening), and brows."""
    er, eye_y = idt.eye_size, idt.eye_height
    centers = np.array([(s * idt.eye_spacing, eye_y, z_eye - er * 1.05) for s in (-1, 1)])
    # a closed eye sinks its eyeball back: the lid over it is thinner than the ray-march tolerance
    eyes = [Prim(tuple(c - [0, 0, 0.4 * er * ex.eyes_closed]), (er, er, er), "eye") for c in centers]
    height = er * 0.6 * (1 - ex.eyes_closed)
    # nearly closed: no opening at all (a slit thinner than a pixel only makes speckles)
    openings = [Prim((c[0], eye_y + 0.1 * er, z_eye + 0.15 * er), (er * 1.15, height, er * 0.9), "skin",
                     rot=rotation(y=np.sign(c[0]) * 0.35), bend=-2.0) for c in centers] if height > 0.06 * er else []
    brows = []
    for s, c in zip((-1, 1), centers):
        lift, tilt = 0.012 * ex.brows, idt.brow_tilt - 0.25 * ex.brows
        brows.append(Prim((c[0] + s * 0.006, eye_y + er * 1.5 + 0.012 + lift, z_brow - 0.001),
                          (0.032, idt.brow_thickness, 0.01), "brow", rot=rotation(y=s * 0.35, z=-s * tilt), bend=-6.0))
    return eyes, openings, brows, centers


def _scale(p: Prim, s: float) -> None:
    """Scale a primitive about the world origin (sizes, clip planes, bend and rims)."""
    p.center = tuple(s * np.asarray(p.center, float))
    p.radii = tuple(s * np.asarray(p.radii, float))
    p.clips = [(n, s * off) for n, off in p.clips]
    p.bend = p.bend / s
    if p.ring is not None:
        p.ring = tuple(s * np.asarray(p.ring))


def _hair(idt: Identity) -> list[Prim]:
    """Hair as a cap over the skull, cut at the hairline, plus style-specific volumes."""
    if idt.hair_style == "bald":
        return []
    hw, hh, hd, v = idt.head_width, idt.head_height, idt.head_depth, idt.hair_volume
    if idt.hair_style == "buzz":
        v = 0.012  # thinner lets the skin's smooth bulge at the nape show through
    hairline = _half((0, -0.9, 1.0), -0.9 * idt.hairline + 1.0 * 0.19)
    lows = {"buzz": 0.045, "short": 0.045, "fringe": 0.045, "bun": 0.035, "curly": -0.06, "bob": -0.1, "long": -0.1}
    low = _half((0, -1, 0.6), -lows[idt.hair_style])  # keep y >= low + 0.6 z: lower towards the back
    cap = Prim((0, 0.058 + v * 0.4, -0.022), (hw + v, hh + v, hd + v), "hair", clips=[hairline, low])
    hair = [cap]
    st = idt.hair_style
    if st == "fringe":
        hair.append(Prim((idt.parting, idt.hairline + 0.015, 0.14), (hw * 0.85, 0.045, 0.08), "hair",
                         clips=[_half((0, -1, 0), -(idt.hairline - 0.03))]))
    if st in ("bob", "curly"):
        hair.append(Prim((0, -0.005, -0.03), (hw + v + 0.02, 0.16, hd + v * 0.5), "hair",
                         clips=[_half((0, 0, 1), 0.075), _half((0, -1, 0), 0.11)]))
    if st == "long":
        for s in (-1, 1):
            # side curtains: rounded in front (a flat cut would catch the light like a panel)
            hair.append(Prim((s * (hw * 0.8), -0.1, -0.04), (0.065 + v, 0.26, 0.11), "hair",
                             clips=[_half((0, -1, 0), 0.37)]))
        hair.append(Prim((0, -0.12, -0.11), (hw + v * 0.5, 0.26, 0.12), "hair", clips=[_half((0, -1, 0), 0.37)]))
    if st == "bun":
        hair.append(Prim((0, 0.24, -0.17), (0.065, 0.06, 0.06), "hair"))
    if idt.parting and st in ("short", "long", "bob"):
        # a side parting: a little extra volume on one side of the crown breaks the symmetry
        hair.append(Prim((-np.sign(idt.parting) * hw * 0.5, 0.2, 0.02), (hw * 0.55, 0.06, 0.12), "hair",
                         clips=[hairline]))
    return hair


def _glasses(idt: Identity, eye_centers: np.ndarray, er: float) -> list[Prim]:
    if not idt.glasses:
        return []
    r = idt.glasses_round
    rx, ry = 0.034 + 0.006 * (1 - r), 0.024 + 0.008 * r
    z = eye_centers[0, 2] + er + 0.022
    y = eye_centers[0, 1]
    parts = [Prim((c[0], y, z), (rx, ry, 1.0), "glasses", ring=(0.0032, 0.0028)) for c in eye_centers]
    inner = abs(eye_centers[0, 0]) - rx
    parts.append(Prim((0, y + ry * 0.4, z + 0.002), (inner + 0.002, 0.003, 0.003), "glasses"))
    for c in eye_centers:
        s = np.sign(c[0])
        front = np.array([c[0] + s * rx, y + 0.004, z - 0.003])
        back = np.array([s * (idt.head_width + 0.006), y + 0.004, -0.03])
        parts.append(Prim(tuple((front + back) / 2), (0.0028, np.linalg.norm(back - front) / 2, 0.0035), "glasses",
                          rot=align_y(back - front)))
    return parts

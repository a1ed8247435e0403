"""Per-frame expression of the procedural head (what changes between frames of one subject)."""

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Expression:
    mouth_open: float = 0.0  # 0 closed .. 1 wide open (shows teeth and the dark mouth)
    smile: float = 0.0  # -0.5 frown .. 1 broad smile (lip corners up, cheeks raised)
    brows: float = 0.0  # -0.5 frowning .. 1 raised
    eyes_closed: float = 0.0  # 0 open .. 1 closed (upper lids come down)
    gaze_yaw: float = 0.0  # radians the eyes look sideways (+ = towards the subject's left)
    gaze_pitch: float = 0.0  # radians up

    @classmethod
    def sample(cls, seed, neutral_prob: float = 0.25) -> "Expression":
        """A random expression; about a quarter are neutral so every subject has calm frames too."""
        rng = np.random.default_rng([int(seed), 0xE7])
        if rng.random() < neutral_prob:
            return cls()
        return cls(
            mouth_open=float(rng.choice([0.0, rng.uniform(0.2, 1.0)], p=[0.55, 0.45])),
            smile=float(rng.uniform(-0.4, 1.0)),
            brows=float(rng.uniform(-0.5, 1.0)),
            eyes_closed=float(rng.choice([0.0, rng.uniform(0.3, 1.0)], p=[0.8, 0.2])),
            gaze_yaw=float(rng.uniform(-0.3, 0.3)),
            gaze_pitch=float(rng.uniform(-0.15, 0.15)),
        )

    def to_dict(self) -> dict:
        return asdict(self)

"""A procedural 3D head: random identities and expressions rendered from any EG3D camera."""

from .expression import Expression
from .identity import Identity
from .render import HeadRender, render_head, render_scene
from .scene import Scene, build_scene
from .sdf import PART, PARTS

__all__ = ["Expression", "Identity", "HeadRender", "render_head", "render_scene", "Scene", "build_scene", "PART", "PARTS"]

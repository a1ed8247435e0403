"""DiffPortrait3D on diffusers: novel views of a portrait from one photo."""

__version__ = "0.1.0"

from .errors import UserError  # noqa: E402,F401

"""The application layer: one flow from references + camera path + settings to views and files,
shared by every front end (cli/ render, demo, serve; batch rendering). See render.py."""

from .render import RenderResult, load_model, render  # noqa: F401
from .settings import RenderSettings  # noqa: F401

"""DiffPortrait3D on diffusers: novel views of a portrait from one photo.

Components saved in model folders are importable from the package top level, which is where
diffusers' `DiffusionPipeline.from_pretrained` looks them up (model_index.json names the library).
"""

__version__ = "0.1.0"

from .errors import UserError  # noqa: F401


def __getattr__(name):
    # lazy: `import diffportrait3d` stays cheap; diffusers loads components by attribute
    if name == "ViewModules":
        from .models.view_modules import ViewModules
        return ViewModules
    if name == "PromptEmbedding":
        from .models.prompt_embedding import PromptEmbedding
        return PromptEmbedding
    if name == "DiffPortrait3DPipeline":
        from .pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline
        return DiffPortrait3DPipeline
    raise AttributeError(name)

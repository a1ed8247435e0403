import os

import pytest
import torch

# a busy second core makes 2 torch threads up to 10x slower than 1
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_pipe():
    from diffportrait3d.pipeline.build import preset_components
    from diffportrait3d.pipeline.pipeline_diffportrait3d import DiffPortrait3DPipeline

    pipe = DiffPortrait3DPipeline(**preset_components("tiny", seed=0))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipe, tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_model")
    tiny_pipe.save_pretrained(d)
    return d

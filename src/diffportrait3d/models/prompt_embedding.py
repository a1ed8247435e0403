"""The stored embedding of the empty prompt: the only text condition DiffPortrait3D uses.

Kept as a component so a model folder needs no text encoder at render time.
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class PromptEmbedding(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, sequence_length: int = 77, dim: int = 768):
        super().__init__()
        self.embeds = nn.Parameter(torch.zeros(1, sequence_length, dim), requires_grad=False)

    def forward(self, batch: int = 1) -> torch.Tensor:
        return self.embeds.expand(batch, -1, -1)

    @classmethod
    def from_tensor(cls, embeds: torch.Tensor) -> "PromptEmbedding":
        embeds = embeds.reshape(1, *embeds.shape[-2:])
        m = cls(sequence_length=embeds.shape[1], dim=embeds.shape[2])
        m.embeds.data.copy_(embeds)
        return m

"""The 27 view-consistency modules of the released layout, as one diffusers component.

Placement (reference_vectors/README.md, quirk 4), for a diffusers UNet:
- after every LDM input block but the first conv: each down block's `attentions[j]` (or
  `resnets[j]` where it has no attention), then its `downsamplers[0]`; the skip a block saves is
  taken after its module, so ControlNet residuals land on the post-module skip;
- one in the middle, between `mid_block.attentions[0]` and the second resnet;
- after every LDM output block: up block layer j (`attentions[j]` or `resnets[j]`); a block that
  ends in an upsampler runs two modules after `upsamplers[0]` instead.

The modules are attached with forward hooks, so the UNet stays a stock diffusers model and its
state dict does not contain them: this component is saved and loaded on its own. Hooks act only
inside `with view_modules.group(num_views):`; outside it the UNet behaves as without modules.
Each hook is a `_ViewHook` object (not a closure): `copy.deepcopy` copies objects but shares
functions, so a deep-copied pipeline's hooks point at ITS view modules, not the original's.
"""

import contextlib

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .view_module import MAX_VIEWS, ViewModule


class ViewModules(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(self, block_out_channels=(320, 640, 1280, 1280), layers_per_block: int = 2, num_attention_heads: int = 8,
                 norm_num_groups: int = 32, num_transformer_blocks: int = 1, max_views: int = MAX_VIEWS):
        super().__init__()
        chans = list(block_out_channels)
        n = len(chans)

        def make(c):
            return ViewModule(c, num_attention_heads, num_transformer_blocks, norm_num_groups, max_views)

        inputs = []
        for i, c in enumerate(chans):
            inputs += [c] * layers_per_block + ([c] if i < n - 1 else [])
        outputs = []
        for i, c in enumerate(reversed(chans)):
            outputs += [[c]] * layers_per_block + [[c, c] if i < n - 1 else [c]]
        # names mirror the checkpoint: input_blocks_motion_module.<k>.0, output_blocks_motion_module.<i>.<j>
        self.input_blocks_motion_module = nn.ModuleList([nn.ModuleList([make(c)]) for c in inputs])
        self.middle_block_motion_module = nn.ModuleList([make(chans[-1])])
        self.output_blocks_motion_module = nn.ModuleList([nn.ModuleList([make(c) for c in cs]) for cs in outputs])
        self._num_views = None
        self._handles = []

    # -- placement -------------------------------------------------------------------------
    def targets(self, unet) -> list[tuple[nn.Module, nn.ModuleList]]:
        """(UNet submodule, the modules that run after it), in forward order."""
        pairs, k = [], 0
        for block in unet.down_blocks:
            layers = block.attentions if getattr(block, "attentions", None) else block.resnets
            ends = list(layers) + ([block.downsamplers[0]] if block.downsamplers else [])
            for sub in ends:
                pairs.append((sub, self.input_blocks_motion_module[k]))
                k += 1
        pairs.append((unet.mid_block.attentions[0], self.middle_block_motion_module))
        i = 0
        for block in unet.up_blocks:
            layers = list(block.attentions if getattr(block, "attentions", None) else block.resnets)
            if block.upsamplers:
                layers[-1] = block.upsamplers[0]
            for sub in layers:
                pairs.append((sub, self.output_blocks_motion_module[i]))
                i += 1
        if k != len(self.input_blocks_motion_module) or i != len(self.output_blocks_motion_module):
            raise ValueError(f"view modules ({len(self.input_blocks_motion_module)} in, {len(self.output_blocks_motion_module)} out) "
                             f"do not fit this UNet ({k} in, {i} out): block_out_channels/layers_per_block differ")
        return pairs

    def attach(self, unet) -> None:
        self.detach()
        for sub, modules in self.targets(unet):
            self._handles.append(sub.register_forward_hook(_ViewHook(self, modules)))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextlib.contextmanager
    def group(self, num_views: int):
        """Within this block, UNet batches are read as groups of `num_views` consecutive views."""
        if not 1 <= num_views <= self.config.max_views:
            raise ValueError(f"a group holds 1..{self.config.max_views} views (the view encoding's length); got {num_views}")
        prev, self._num_views = self._num_views, num_views
        try:
            yield self
        finally:
            self._num_views = prev

    def non_identity_modules(self) -> list[str]:
        return [name for name, m in self.named_modules() if isinstance(m, ViewModule) and not m.is_identity()]


class _ViewHook:
    """Forward hook running `modules` after a UNet submodule while `owner` is inside `group()`."""

    def __init__(self, owner: ViewModules, modules: nn.ModuleList):
        self.owner, self.modules = owner, modules

    def __call__(self, _module, _inputs, output):
        n = self.owner._num_views
        if n is None:
            return output
        h = output[0] if isinstance(output, tuple) else output  # Transformer2DModel returns a tuple
        for m in self.modules:
            h = m(h, n)
        return (h,) + tuple(output[1:]) if isinstance(output, tuple) else h

"""The 3D-aware noise model S (paper section 3.4, appendix A.1): reference image -> proxy image at a target camera.

The proxy I~ is blurry but 3D-consistent; the pipeline starts denoising from
x_T = sqrt(a_999) E(I~) + sqrt(1 - a_999) n instead of pure noise.

    reference (B, 3, H, W) --2D encoder--> (B, C*D, h, w) --reshape--> volume (B, C, D, h, w)
    in the reference camera's frustum --3D convs--> --resample into each target camera's frustum-->
    (B*V, C, S, h, w) --alpha compositing along S--> (B*V, C-1, h, w) --2D decoder--> (B*V, 3, H, W)

Channel 0 of the volume is density, the rest are features. The volume spans depths [near, far]
(camera z) of the reference camera: EG3D's 2.25..3.3 brackets a head at the origin seen from the
orbit radius 2.7. Frustum volumes live in `noise3d_geometry.py`, camera math in cameras/eg3d_torch.py.
"""

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..cameras.eg3d_torch import split_label
from . import noise3d_geometry as geo


def _norm(c: int, max_groups: int) -> nn.GroupNorm:
    groups = max(g for g in range(1, max_groups + 1) if c % g == 0)
    return nn.GroupNorm(groups, c)


def _conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), _norm(cout, 8), nn.SiLU())


class _Res3d(nn.Module):
    """Residual 3x3x3 block; the residual keeps the lifted volume usable from the first step."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_norm(c, 4), nn.SiLU(), nn.Conv3d(c, c, 3, 1, 1),
                                  _norm(c, 4), nn.SiLU(), nn.Conv3d(c, c, 3, 1, 1))

    def forward(self, x):
        return x + self.body(x)


class NoiseModel3D(ModelMixin, ConfigMixin):
    """Novel-view proxy images from one reference image and EG3D camera labels.

    Args (all stored in config.json):
        image_size: H = W of the reference and the proxies.
        base_channels: channels of the 2D encoder/decoder at full resolution (doubled per downsample).
        downsample: the volume and the rendered feature map have image_size / 2**downsample pixels a side.
        volume_channels: C, channels per voxel (1 density + C-1 features).
        volume_depth: D, depth cells of the reference frustum volume.
        conv3d_layers: residual 3D conv blocks refining the lifted volume.
        render_samples: S, depth samples per target ray (= D makes the same camera an exact identity).
        near, far: depth range (camera z) of the volume and the rays; EG3D's FFHQ values.
        reference_skip: feed the reference's 2D features to the decoder too (screen-space content such
            as a backdrop that stays put while the camera moves cannot come from the volume).
        training_loss: informational, set by training: which perceptual term trained the weights.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, image_size: int = 64, base_channels: int = 16, downsample: int = 2, volume_channels: int = 16,
                 volume_depth: int = 16, conv3d_layers: int = 2, render_samples: int = 16, near: float = 2.25,
                 far: float = 3.3, reference_skip: bool = True, training_loss: str | None = None):
        super().__init__()
        if image_size % 2**downsample:
            raise ValueError(f"image_size {image_size} must be divisible by 2**downsample = {2**downsample}")
        if not 0 < near < far:
            raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
        if volume_channels < 2:
            raise ValueError(f"volume_channels must be >= 2 (density + features), got {volume_channels}")
        chans = [base_channels * 2**i for i in range(downsample + 1)]
        self.conv_in = _conv_block(3, chans[0])
        self.down = nn.ModuleList(nn.Sequential(_conv_block(chans[i], chans[i + 1], 2), _conv_block(chans[i + 1], chans[i + 1]))
                                  for i in range(downsample))
        self.to_volume = nn.Conv2d(chans[-1], volume_channels * volume_depth, 1)
        self.volume_convs = nn.Sequential(*[_Res3d(volume_channels) for _ in range(conv3d_layers)])
        dec_in = volume_channels - 1 + 1 + (chans[-1] if reference_skip else 0)  # features, opacity, skip
        self.dec_in = _conv_block(dec_in, chans[-1])
        self.up = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv_block(chans[i + 1], chans[i]),
                                              _conv_block(chans[i], chans[i]))
                                for i in reversed(range(downsample)))
        self.conv_out = nn.Conv2d(chans[0], 3, 3, 1, 1)

    # -- the three stages ------------------------------------------------------------------
    def encode(self, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference (B, 3, H, W) -> volume (B, C, D, h, w) with density >= 0 in channel 0, and 2D features."""
        cfg = self.config
        x = self.conv_in(reference)
        for block in self.down:
            x = block(x)
        b, _, h, w = x.shape
        vol = self.to_volume(x).view(b, cfg.volume_channels, cfg.volume_depth, h, w)  # (B, C*D, h, w) -> (B, C, D, h, w)
        vol = self.volume_convs(vol)
        # density per unit length, scaled so that softplus(raw) = 1 makes one depth cell ~63% opaque;
        # activated here so that space outside the reference frustum (zeros after resampling) is empty.
        # the -2 offset starts the volume mostly transparent, so early gradients reach all depths
        cell = (cfg.far - cfg.near) / cfg.volume_depth
        density = F.softplus(vol[:, :1] - 2.0) / cell
        return torch.cat([density, vol[:, 1:]], dim=1), x

    def render(self, volume: torch.Tensor, reference_label: torch.Tensor, target_label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Volume (N, C, D, h, w) of the reference camera, labels (N, 25) -> features (N, C-1, h, w), opacity (N, 1, h, w)."""
        cfg = self.config
        _, _, _, h, w = volume.shape
        shape = (cfg.render_samples, h, w)
        vol = geo.resample(volume, reference_label, target_label, cfg.near, cfg.far, shape)  # (N, C, S, h, w)
        _, k = split_label(target_label)
        step = geo.step_lengths(k, *shape, cfg.near, cfg.far).to(vol)
        return geo.composite(vol[:, 0], vol[:, 1:], step)

    def decode(self, features: torch.Tensor, opacity: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = torch.cat([features, opacity] + ([skip] if skip is not None else []), dim=1)
        x = self.dec_in(x)
        for block in self.up:
            x = block(x)
        return torch.tanh(self.conv_out(x))

    # -- public API --------------------------------------------------------------------------
    def forward(self, reference: torch.Tensor, reference_label: torch.Tensor, target_labels: torch.Tensor) -> torch.Tensor:
        """Proxy images of the reference's subject seen from the target cameras.

        reference (B, 3, H, W) in [-1, 1]; reference_label (B, 25); target_labels (B, 25) or (B, V, 25).
        Returns (B, 3, H, W), or (B, V, 3, H, W) for (B, V, 25) targets, in [-1, 1]. The reference is
        encoded once per batch item however many views are asked for.
        """
        self._check(reference, reference_label, target_labels)
        multi = target_labels.dim() == 3
        tgt = target_labels if multi else target_labels[:, None]
        b, v = tgt.shape[:2]
        volume, feats = self.encode(reference)
        # (B, ...) -> (B*V, ...): each view renders the same volume from its own camera
        rep = lambda t: t.repeat_interleave(v, dim=0)  # noqa: E731
        rendered, opacity = self.render(rep(volume), rep(reference_label), tgt.reshape(b * v, 25))
        out = self.decode(rendered, opacity, rep(feats) if self.config.reference_skip else None)
        out = out.view(b, v, *out.shape[1:])
        return out if multi else out[:, 0]

    @torch.no_grad()
    def proxies(self, reference_image: torch.Tensor, reference_label: torch.Tensor, target_labels: torch.Tensor) -> torch.Tensor:
        """Pipeline helper: one reference (3, H, W) or (1, 3, H, W), its label (25,) or (1, 25),
        V targets (V, 25) -> proxies (V, 3, H, W) in [-1, 1], on the reference's device and dtype.

        A reference of another size is resized to `image_size` and the proxies back to its size.
        """
        ref = reference_image if reference_image.dim() == 4 else reference_image[None]
        size = ref.shape[-2:]
        p = next(self.parameters())
        x = ref.to(p)
        if tuple(size) != (self.config.image_size,) * 2:
            x = F.interpolate(x, size=self.config.image_size, mode="bilinear", antialias=True, align_corners=False)
        ref_label = reference_label.reshape(1, 25).to(p.device, torch.float32)
        tgt = target_labels.reshape(1, -1, 25).to(p.device, torch.float32)
        out = self(x, ref_label, tgt)[0]
        if tuple(size) != tuple(out.shape[-2:]):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        return out.to(reference_image.device, reference_image.dtype)

    def _check(self, reference, reference_label, target_labels) -> None:
        s = self.config.image_size
        if reference.dim() != 4 or reference.shape[1:] != (3, s, s):
            raise ValueError(f"reference must be (B, 3, {s}, {s}), got {tuple(reference.shape)}")
        b = reference.shape[0]
        if reference_label.shape != (b, 25):
            raise ValueError(f"reference_label must be ({b}, 25), got {tuple(reference_label.shape)}")
        if target_labels.shape[0] != b or target_labels.shape[-1] != 25 or target_labels.dim() not in (2, 3):
            raise ValueError(f"target_labels must be ({b}, 25) or ({b}, V, 25), got {tuple(target_labels.shape)}")

"""View-consistency module: attention across the views of a group at every pixel.

AnimateDiff-v1 style ("Vanilla" temporal module), with the parameter names of the released
DiffPortrait3D checkpoint so its keys load unchanged (see convert/official.py):

    GroupNorm -> tokens -> proj_in -> 2 x (LN -> view attention -> +res) -> LN -> GEGLU FF -> +res
    -> proj_out (zero-initialised, so a new module is the identity) -> + input
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_VIEWS = 32  # length of the sinusoidal view encoding in the released model


class SinusoidalViewEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int = MAX_VIEWS):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(pos * div)
        pe[0, :, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe)  # persistent: the released checkpoint stores it

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, V, C)
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class ViewAttention(nn.Module):
    """Self-attention over the view axis; the view encoding is added to q/k/v inputs only."""

    def __init__(self, dim: int, heads: int, max_views: int = MAX_VIEWS):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = SinusoidalViewEncoding(dim, max_views)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, V, C)
        n, v, c = x.shape
        x = self.pos_encoder(x)
        q, k, val = (f(x).view(n, v, self.heads, c // self.heads).transpose(1, 2) for f in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, val)  # scale head_dim ** -0.5, as the release
        out = out.transpose(1, 2).reshape(n, v, c)
        return self.to_out[1](self.to_out[0](out))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        hidden, gate = self.proj(x).chunk(2, dim=-1)  # [hidden, gate] order, as the release
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


class ViewTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, num_attention: int = 2, max_views: int = MAX_VIEWS):
        super().__init__()
        self.attention_blocks = nn.ModuleList([ViewAttention(dim, heads, max_views) for _ in range(num_attention)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attention)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x):  # x: (N, V, C)
        for attn, norm in zip(self.attention_blocks, self.norms):
            x = attn(norm(x)) + x
        return self.ff(self.ff_norm(x)) + x


class ViewTransformer(nn.Module):
    def __init__(self, dim: int, heads: int = 8, num_blocks: int = 1, norm_groups: int = 32, max_views: int = MAX_VIEWS):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, dim, eps=1e-6)
        self.proj_in = nn.Linear(dim, dim)
        self.transformer_blocks = nn.ModuleList([ViewTransformerBlock(dim, heads, max_views=max_views) for _ in range(num_blocks)])
        self.proj_out = nn.Linear(dim, dim)
        nn.init.zeros_(self.proj_out.weight)  # identity until trained
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, num_views: int) -> torch.Tensor:
        bv, c, h, w = x.shape
        if bv % num_views:
            raise ValueError(f"batch {bv} is not a multiple of the group size {num_views}")
        residual = x
        t = self.norm(x).permute(0, 2, 3, 1).reshape(bv, h * w, c)
        t = self.proj_in(t)
        # (B*V, H*W, C) -> (B*H*W, V, C): attend across views at each pixel
        t = t.view(bv // num_views, num_views, h * w, c).transpose(1, 2).reshape(-1, num_views, c)
        for block in self.transformer_blocks:
            t = block(t)
        t = t.view(bv // num_views, h * w, num_views, c).transpose(1, 2).reshape(bv, h * w, c)
        t = self.proj_out(t)
        # residual first: the sum takes the input's (contiguous) layout, not the permuted one's, so the UNet
        # after a module runs the same kernels as without it (an identity module is then bitwise identity)
        return residual + t.reshape(bv, h, w, c).permute(0, 3, 1, 2)


class ViewModule(nn.Module):
    """One module of the released layout; `temporal_transformer` keeps the checkpoint's key names."""

    def __init__(self, dim: int, heads: int = 8, num_blocks: int = 1, norm_groups: int = 32, max_views: int = MAX_VIEWS):
        super().__init__()
        self.temporal_transformer = ViewTransformer(dim, heads, num_blocks, norm_groups, max_views)

    def forward(self, x, num_views: int):
        return self.temporal_transformer(x, num_views)

    def is_identity(self) -> bool:
        p = self.temporal_transformer.proj_out
        return bool((p.weight == 0).all() and (p.bias == 0).all())

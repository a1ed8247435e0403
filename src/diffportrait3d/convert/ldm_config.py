"""The authors' yaml-shaped model config -> diffusers component configs.

The form is that of `ldm_config_as_instantiated` in shared/reference_vectors/tiny_config.json:
{"model": {"params": {"unet_config": {"params": {...}}, "pose_control_stage_config": ...}}}.
diffusers' own `create_*_diffusers_config_from_ldm` helpers do not understand this yaml.
"""

import copy

# cldm_v15_diffportrait3D.yaml as the released model was trained (SD1.5 widths, 8 heads)
_UNET = dict(image_size=64, in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1],
             num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8, use_spatial_transformer=True,
             transformer_depth=1, context_dim=768, use_checkpoint=False, legacy=False)
RELEASED_CONFIG = {"model": {"params": {
    "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000, "scale_factor": 0.18215,
    "unet_config": {"params": {**_UNET, "unet_additional_kwargs": {"use_motion_module": True, "motion_module_type": "Vanilla",
                    "motion_module_kwargs": {"num_attention_heads": 8, "num_transformer_block": 1,
                                             "attention_block_types": ["Temporal_Self", "Temporal_Self"],
                                             "temporal_position_encoding": True, "temporal_position_encoding_max_len": 32,
                                             "zero_initialize": True}}}},
    "appearance_control_stage_config": {"params": {**_UNET, "hint_channels": 3}},
    "pose_control_stage_config": {"params": {**_UNET, "hint_channels": 3}},
}}}


def _params(cfg: dict, key: str) -> dict:
    try:
        return cfg["model"]["params"][key]["params"]
    except (KeyError, TypeError):
        raise ValueError(f"original config has no model.params.{key}.params") from None


def _heads(p: dict) -> list[int] | int:
    """diffusers' `attention_head_dim` holds the NUMBER of heads for SD1.5-style UNets."""
    chans = [p["model_channels"] * m for m in p["channel_mult"]]
    if p.get("num_heads", -1) != -1:
        return p["num_heads"]
    return [c // p["num_head_channels"] for c in chans]


def _blocks(p: dict):
    levels = len(p["channel_mult"])
    attn = [2**i in p["attention_resolutions"] for i in range(levels)]
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    return down, up


def unet_config(p: dict) -> dict:
    down, up = _blocks(p)
    return dict(sample_size=p.get("image_size", 64), in_channels=p.get("in_channels", 4), out_channels=p.get("out_channels", 4),
                block_out_channels=tuple(p["model_channels"] * m for m in p["channel_mult"]), layers_per_block=p["num_res_blocks"],
                down_block_types=down, up_block_types=up, cross_attention_dim=p["context_dim"], attention_head_dim=_heads(p),
                use_linear_projection=bool(p.get("use_linear_in_transformer", False)),
                transformer_layers_per_block=p.get("transformer_depth", 1), norm_num_groups=32)


def controlnet_config(p: dict, hint_channels_out=(16, 32, 96, 256)) -> dict:
    c = unet_config(p)
    for k in ("up_block_types", "out_channels", "sample_size"):
        c.pop(k)
    return dict(c, conditioning_channels=p.get("hint_channels", 3), conditioning_embedding_out_channels=tuple(hint_channels_out))


def view_modules_config(p: dict) -> dict:
    mm = p.get("unet_additional_kwargs", {}).get("motion_module_kwargs", {})
    return dict(block_out_channels=tuple(p["model_channels"] * m for m in p["channel_mult"]), layers_per_block=p["num_res_blocks"],
                num_attention_heads=mm.get("num_attention_heads", 8), num_transformer_blocks=mm.get("num_transformer_block", 1),
                max_views=mm.get("temporal_position_encoding_max_len", 32), norm_num_groups=32)


def configs(original: dict | None) -> dict:
    """All component configs for an original config (the released model's when None)."""
    cfg = copy.deepcopy(original or RELEASED_CONFIG)
    unet_p = _params(cfg, "unet_config")
    top = cfg["model"]["params"]
    return dict(unet=unet_config(unet_p), reference_unet=unet_config(_params(cfg, "appearance_control_stage_config")),
                controlnet=controlnet_config(_params(cfg, "pose_control_stage_config")), view_modules=view_modules_config(unet_p),
                schedule=dict(beta_start=top.get("linear_start", 0.00085), beta_end=top.get("linear_end", 0.012),
                              num_train_timesteps=top.get("timesteps", 1000)),
                scale_factor=top.get("scale_factor", 0.18215))

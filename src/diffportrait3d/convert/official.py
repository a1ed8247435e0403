"""Convert the authors' released checkpoint (LDM layout) into our components.

Prefixes: `model.diffusion_model.` backbone + view modules (`*_motion_module*`), `control_model.`
appearance (reference) UNet, `pose_control_model.` view ControlNet, optionally
`first_stage_model.` VAE and `cond_stage_model.` CLIP text encoder.

diffusers' LDM helpers do the UNet/ControlNet/VAE key maps; they read fixed prefixes and drop
silently what they cannot map, so every key is tracked here by tensor identity and leftovers are
reported by name. View modules keep their names: only the prefix goes.
"""

import logging
from dataclasses import dataclass, field

import torch
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint, convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

from ..errors import UserError
from . import ldm_config

logger = logging.getLogger(__name__)

UNET, REF, POSE, VAE, CLIP = "model.diffusion_model.", "control_model.", "pose_control_model.", "first_stage_model.", "cond_stage_model."
MOTION = ("input_blocks_motion_module", "middle_block_motion_module", "output_blocks_motion_module")
# the LDM wrapper's schedule buffers; we recompute the schedule (and could cross-check it)
SCHEDULE_BUFFERS = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
                    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
                    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "logvar"}
# the reference UNet never uses its output head nor its hint encoder
REF_UNUSED_PREFIXES = ("input_hint_block.",)


@dataclass
class ConversionReport:
    unused: list[str] = field(default_factory=list)     # checkpoint keys nothing consumed
    missing: dict[str, list[str]] = field(default_factory=dict)  # component -> parameters not in the checkpoint
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"unused checkpoint keys: {len(self.unused)}"] + [f"  {k}" for k in self.unused[:50]]
        for comp, keys in self.missing.items():
            lines += [f"{comp}: {len(keys)} parameters not in the checkpoint"] + [f"  {k}" for k in keys[:50]]
        return "\n".join(lines + self.notes)


def _sub(sd: dict, prefix: str, new_prefix: str = "", keep=lambda k: True) -> dict:
    return {new_prefix + k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix) and keep(k[len(prefix):])}


def _is_motion(k: str) -> bool:
    return k.startswith(MOTION)


def split_checkpoint(sd: dict) -> dict:
    """Group checkpoint keys per component, in the prefixes diffusers' helpers expect."""
    known = (UNET, REF, POSE, VAE, CLIP)
    if not any(k.startswith(known) for k in sd):
        raise UserError("not a DiffPortrait3D checkpoint: no key starts with model.diffusion_model., control_model. or pose_control_model.")
    return dict(
        unet=_sub(sd, UNET, UNET, keep=lambda k: not _is_motion(k)),
        view_modules=_sub(sd, UNET, "", keep=_is_motion),
        # the helper reads `model.diffusion_model.` only: re-prefix the appearance UNet
        reference_unet=_sub(sd, REF, UNET, keep=lambda k: not k.startswith(REF_UNUSED_PREFIXES)),
        # ... and `control_model.` for ControlNets, which here is the appearance UNet's prefix
        controlnet=_sub(sd, POSE, REF),
        vae=_sub(sd, VAE, VAE),
        text_encoder=_sub(sd, CLIP + "transformer.", ""),
    )


def convert_state_dicts(sd: dict, original_config: dict | None = None) -> tuple[dict, dict, ConversionReport]:
    """LDM state dict -> ({component: diffusers state dict}, {component: config}, report)."""
    cfg = ldm_config.configs(original_config)
    parts = split_checkpoint(sd)
    report = ConversionReport()
    out = {}
    out["unet"] = convert_ldm_unet_checkpoint(parts["unet"], cfg["unet"])
    out["reference_unet"] = convert_ldm_unet_checkpoint(parts["reference_unet"], cfg["reference_unet"])
    out["controlnet"] = {k: v for k, v in convert_controlnet_checkpoint(parts["controlnet"], cfg["controlnet"]).items() if v is not None}
    out["view_modules"] = parts["view_modules"]
    if parts["vae"]:
        cfg["vae"] = vae_config(parts["vae"], cfg["scale_factor"])
        out["vae"] = convert_ldm_vae_checkpoint(parts["vae"], cfg["vae"])
    if parts["text_encoder"]:
        out["text_encoder"] = parts["text_encoder"]
    consumed = {id(v) for d in out.values() for v in d.values()}
    if "vae" in out and len(out["vae"]) == len(parts["vae"]):
        # the VAE helper reshapes its attention weights (new tensors): a 1:1 key count is the check there
        consumed |= {id(v) for v in parts["vae"].values()}
    report.unused = sorted(k for k, v in sd.items() if id(v) not in consumed and k not in SCHEDULE_BUFFERS
                           and not (k.startswith(REF) and k[len(REF):].startswith(REF_UNUSED_PREFIXES)))
    return out, cfg, report


def vae_config(vae_sd: dict, scale_factor: float) -> dict:
    """SD's AutoencoderKL layout, widths read from the checkpoint."""
    n = len({k.split(".")[3] for k in vae_sd if k.startswith(VAE + "encoder.down.")})
    chans = tuple(vae_sd[f"{VAE}encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in range(n))
    return dict(block_out_channels=chans, layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * n,
                up_block_types=("UpDecoderBlock2D",) * n, latent_channels=vae_sd[VAE + "quant_conv.weight"].shape[0] // 2,
                scaling_factor=scale_factor)


def load_into(model: torch.nn.Module, state: dict, name: str, report: ConversionReport, fill_from: torch.nn.Module | None = None):
    """Strictly load `state`; shape mismatches fail with the key, missing parameters are reported."""
    own = model.state_dict()
    for k, v in state.items():
        if k not in own:
            report.unused.append(f"{name}:{k}")
        elif tuple(own[k].shape) != tuple(v.shape):
            raise UserError(f"checkpoint does not fit the model config: {name} parameter {k} is {tuple(v.shape)} in the checkpoint "
                            f"but {tuple(own[k].shape)} in the model; pass the matching --original-config")
    missing = [k for k in own if k not in state]
    if fill_from is not None and missing:
        donor = fill_from.state_dict()
        state = dict(state, **{k: donor[k] for k in missing if k in donor})
        report.notes.append(f"{name}: {len(missing)} parameters unused by the model taken from the backbone: {', '.join(missing)}")
        missing = [k for k in own if k not in state]
    if missing:
        report.missing[name] = missing
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False, assign=any(p.is_meta for p in model.parameters()))
    return model


def build_components(sd: dict, original_config: dict | None = None, meta: bool = False):
    """Networks from an LDM state dict: (dict of unet, reference_unet, controlnet, view_modules
    [, vae]), the component configs, and the report. `meta` builds on the meta device (checks a
    layout without allocating it)."""
    import contextlib

    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    from ..models.view_modules import ViewModules

    converted, cfg, report = convert_state_dicts(sd, original_config)
    ctx = init_empty_weights if meta else contextlib.nullcontext
    with ctx():
        nets = dict(unet=UNet2DConditionModel(**cfg["unet"]), reference_unet=UNet2DConditionModel(**cfg["reference_unet"]),
                    controlnet=ControlNetModel(**cfg["controlnet"]), view_modules=ViewModules(**cfg["view_modules"]))
    load_into(nets["unet"], converted["unet"], "unet", report)
    load_into(nets["reference_unet"], converted["reference_unet"], "reference_unet", report, fill_from=nets["unet"])
    load_into(nets["controlnet"], converted["controlnet"], "controlnet", report)
    load_into(nets["view_modules"], converted["view_modules"], "view_modules", report)
    if "vae" in converted:
        with ctx():
            nets["vae"] = AutoencoderKL(**cfg["vae"])
        load_into(nets["vae"], converted["vae"], "vae", report)
    if not meta:
        mid = nets["view_modules"].middle_block_motion_module[0]
        if not mid.is_identity():
            # the release never runs it on the conditional branch; we run it on both
            report.notes.append("the middle view module is NOT an identity in this checkpoint: the authors' code runs it only "
                                "on the unconditional branch, this library on both, so outputs will differ from theirs")
    return nets, cfg, report, converted.get("text_encoder")


def load_checkpoint(path) -> dict:
    """.safetensors, or a torch pickle (.th/.ckpt/.pt/.bin) read with weights_only=True and mmap."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001  torch raises many types for foreign files
        raise UserError(f"cannot read {path} as a weights-only torch checkpoint ({e.__class__.__name__}: {str(e).splitlines()[0][:200]})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path} holds no plain tensor state dict")
    return sd

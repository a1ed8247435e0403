"""Turbo mode: a few-step student distilled from the model (training/stages/distill.py), with the teacher's
classifier-free guidance folded in, so each step is one backbone batch (the conditional half).

A distilled model folder holds the student beside the teacher (turbo_unet/, turbo_view_modules/) and says how it
samples in model_index.json: "turbo": {"steps": 4, "guidance_scale": 3.0, "teacher_steps": 50, "solver": "lcm"}.
"lcm": a latent consistency model (Luo et al. 2023) with diffusers' LCMScheduler; "ddim": a student of the guided
noise prediction itself (guidance distillation, Meng et al. 2023), stepped by deterministic DDIM on "trailing"
timesteps. On the miniature model the consistency student had not learned the guidance, which carries the camera at
few steps (yaw error 16 deg at 4 steps with any sampler); the guidance student keeps it (docs/lab/2026-12-07-turbo-three.md).
"""

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, LCMScheduler
from diffusers.schedulers.scheduling_lcm import LCMSchedulerOutput

from ..errors import UserError


STUDENT = ("turbo_unet", "turbo_view_modules")  # the student's components in a distilled folder
SOLVERS = ("lcm", "ddim")


@dataclass(frozen=True)
class TurboConfig:
    steps: int = 4              # default step count of --mode turbo
    guidance_scale: float = 3.0  # the teacher's guidance the student learned to reproduce (folded in)
    teacher_steps: int = 50      # the teacher's DDIM grid (k = 1000 / teacher_steps) the consistency function lives on
    solver: str = "lcm"          # "lcm": a consistency student; "ddim": a guided-noise student (see above)

    @classmethod
    def from_config(cls, value: dict | None) -> "TurboConfig":
        try:
            cfg = cls(**(value or {}))
        except TypeError as e:
            raise UserError(f"model_index.json: bad \"turbo\" entry {value!r} ({e})") from None
        typed = (all(isinstance(n, int) and not isinstance(n, bool) for n in (cfg.steps, cfg.teacher_steps))
                 and isinstance(cfg.guidance_scale, (int, float)) and not isinstance(cfg.guidance_scale, bool))
        if (not typed or not 1 <= cfg.steps <= cfg.teacher_steps or cfg.guidance_scale < 0 or not 1 <= cfg.teacher_steps <= 1000
                or cfg.solver not in SOLVERS):
            raise UserError(f"model_index.json: bad \"turbo\" entry {value!r}: need 1 <= steps <= teacher_steps <= 1000, "
                            f"guidance_scale >= 0, steps whole numbers, solver one of {', '.join(SOLVERS)}")
        return cfg


class LCMStepNoise(LCMScheduler):
    """diffusers' LCMScheduler whose `step` also takes `variance_noise`, the noise it adds on the way to the next
    timestep, so that the pipeline's noise prior (camera-correlated, mean-free) reaches every step as with DDIM."""

    def step(self, model_output, timestep, sample, generator=None, return_dict: bool = True, variance_noise=None):
        if self.step_index is None:
            self._init_step_index(timestep)
        nxt = self.step_index + 1
        if variance_noise is not None:
            # the parent draws noise that is then replaced: from a throwaway generator, so that neither the caller's
            # generator nor the global RNG moves (as with DDIM's variance_noise)
            generator = torch.Generator(device=sample.device)
        out = super().step(model_output, timestep, sample, generator=generator, return_dict=True)
        if variance_noise is not None and nxt < len(self.timesteps):
            a = self.alphas_cumprod[self.timesteps[nxt]].to(out.denoised)
            out = LCMSchedulerOutput(prev_sample=a.sqrt() * out.denoised + (1 - a).sqrt() * variance_noise.to(out.denoised),
                                     denoised=out.denoised)
        return out if return_dict else (out.prev_sample, out.denoised)


def turbo_scheduler(config, turbo: TurboConfig) -> LCMStepNoise | DDIMScheduler:
    """The student's sampler, on the teacher scheduler's noise schedule."""
    if turbo.solver == "ddim":  # "trailing": the first step at t = 999, where the 3D-aware initial latent is taken
        return DDIMScheduler.from_config(config, timestep_spacing="trailing", clip_sample=False, thresholding=False)
    return LCMStepNoise.from_config(config, original_inference_steps=turbo.teacher_steps, clip_sample=False,
                                    thresholding=False, timestep_scaling=10.0)


def check_turbo_steps(turbo: TurboConfig, steps: int) -> int:
    """`steps`, or a one-line UserError when the student cannot take them: LCM's steps are a subset of the teacher's
    grid it was distilled on (diffusers' LCMScheduler would raise a ValueError)."""
    if not 1 <= steps <= turbo.teacher_steps:
        raise UserError(f"--steps {steps}: --mode turbo takes 1..{turbo.teacher_steps} steps (the teacher's grid its "
                        "student was distilled on)")
    return steps


def require_student(pipe) -> TurboConfig:
    """The folder's TurboConfig, or a one-line UserError for a folder that was not distilled. `pipe`: a loaded
    pipeline, or a folder's model_index.json entries (the same check before its weights load)."""
    if isinstance(pipe, dict):
        present, config = all((pipe.get(k) or [None])[0] is not None for k in STUDENT), pipe.get("turbo")
    else:
        present, config = all(getattr(pipe, k, None) is not None for k in STUDENT), pipe.config.get("turbo")
    if not present:
        raise UserError("--mode turbo needs a distilled model folder (turbo_unet/ and turbo_view_modules/ in it); "
                        "make one with `dp3d train --stage distill --model MODEL`, or use --mode fast")
    return TurboConfig.from_config(config)

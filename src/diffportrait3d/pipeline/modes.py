"""Sampling modes: `exact` reproduces the released model's sampler; the others trade exactness for
speed, each measured against exact by benchmarks/bench_speed_quality.py (numbers in the README).

A mode names a solver (built from the pipeline scheduler's config, so the noise schedule stays the
model's), a default step count and how often the reference tokens are recomputed.
"""

from dataclasses import dataclass

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

# "trailing" spacing starts at t = 999, where the 3D-aware initial latent is taken
SOLVERS = {
    "dpm++2m": lambda cfg: DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="dpmsolver++", solver_order=2,
                                                                  timestep_spacing="trailing"),
    "dpm++2m-sde": lambda cfg: DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="sde-dpmsolver++", solver_order=2,
                                                                      timestep_spacing="trailing"),
    "unipc": lambda cfg: UniPCMultistepScheduler.from_config(cfg, timestep_spacing="trailing"),
    "ddim-trailing": lambda cfg: DDIMScheduler.from_config(cfg, timestep_spacing="trailing"),
}


@dataclass(frozen=True)
class SamplingMode:
    solver: str | None = None   # None: the pipeline's own `scheduler` (exact: the release's DDIM); else a SOLVERS key
    steps: int = 50             # default number of steps (num_inference_steps overrides it)
    reference_every: int = 1    # recompute the reference tokens every k steps (1: every step, exact)
    student: bool = False       # the distilled student (pipeline/turbo.py): its own LCM sampler and step count

    def scheduler(self, pipeline_scheduler):
        return pipeline_scheduler if self.solver is None else SOLVERS[self.solver](pipeline_scheduler.config)


MODES = {
    "exact": SamplingMode(),
    "fast": SamplingMode("unipc", 10),  # met every target of bench_speed_quality on the shipped model (README)
    "turbo": SamplingMode(steps=4, student=True),  # a distilled folder's student; steps from its model_index.json
    "dpm++2m-sde-12": SamplingMode("dpm++2m-sde", 12),
    "dpm++2m-sde-10": SamplingMode("dpm++2m-sde", 10),
    "dpm++2m-12": SamplingMode("dpm++2m", 12),
    "dpm++2m-10": SamplingMode("dpm++2m", 10),
    "unipc-10": SamplingMode("unipc", 10),
    "ddim-12": SamplingMode("ddim-trailing", 12),
    "ref-every-2": SamplingMode(reference_every=2),
}

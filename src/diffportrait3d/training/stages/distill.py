"""`distill` stage: a few-step student of a whole DiffPortrait3D model (issue 38), the teacher's guidance folded in:
by guidance distillation (the default, see option `method` below) or latent consistency distillation (Luo et al.
2023, "Latent Consistency Models"), as follows.

Student: copies of the backbone and its view modules (turbo_unet, turbo_view_modules), reading the teacher's frozen
reference UNet, view ControlNet and position bias. For a group of views at a timestep t of the teacher's DDIM grid
(k = 1000 / teacher_steps apart), the teacher's guided DDIM step takes x_t to x_{t-k}; the student's consistency
function f(x, t) = c_skip(t) x + c_out(t) x0(x, eps_student) at (x_t, t) learns to match its own value at
(x_{t-k}, t-k), computed without gradient by the online student itself (as improved consistency training does)
or, with option `target_decay` (LCM's 0.95), by an EMA of it. Both points then map to one clean latent: the end of
the teacher's guided trajectory, so the student samples in a few LCM steps with one backbone batch each
(pipeline/turbo.py).

Option `method` "guidance" (the default) trains instead the student's noise prediction at (x_t, t), t anywhere in
0..999, to the teacher's guided one (guidance distillation, Meng et al. 2023, its first stage): the student then
samples with DDIM in a few steps (pipeline/turbo.py), one backbone batch each. On the miniature model the consistency
student lost the camera at 4 LCM steps (yaw error 16 deg) and the guidance student kept it (docs/lab/2026-12-07-turbo-three.md).

Data: references and condition images; the targets' latents only set where x_t starts (a user without multi-view
captures can give the reference as the target). The exported folder is the teacher's with the student beside it
and a "turbo" entry in model_index.json.
"""

import contextlib
import copy
from dataclasses import asdict, dataclass, replace

import torch

from ...errors import UserError
from ...models.denoiser import Networks, backbone_eps, control_residuals, reference_bank
from ...models.reference_attention import ReferenceBank
from ...pipeline.schedule import q_sample
from ...pipeline.turbo import TurboConfig, turbo_scheduler
from .base import check_flag, check_option, generators, register
from .diffportrait3d import DiffPortrait3DStage


METHODS = {"consistency": "lcm", "guidance": "ddim"}  # distillation -> the turbo sampler it trains for


@dataclass
class DistillOptions:
    guidance_scale: float = 3.0  # the teacher's guidance, folded into the student
    teacher_steps: int = 50      # the teacher's DDIM grid the student skips along
    steps: int = 4               # the turbo mode's default step count, written to model_index.json
    huber_c: float = 0.001       # pseudo-Huber loss scale (LCM's), in latent units
    ordered: bool = True         # groups of views neighbouring in yaw, an orbit's (ViewGroupDataset)
    target_decay: float = 0.0    # > 0: the target network is an EMA of the student (LCM's 0.95); 0: the online student
    method: str = "guidance"     # the student learns the teacher's guided noise prediction (DDIM turbo); "consistency": LCM

    def __post_init__(self):
        # in the options' own words (TurboConfig's check speaks of model_index.json, where these numbers end up)
        for name in ("teacher_steps", "steps"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise UserError(f"option {name} must be a whole number, got {getattr(self, name)!r}")
        check_option("teacher_steps", self.teacher_steps, 1, 1000)
        check_option("steps", self.steps, 1, self.teacher_steps)
        check_option("guidance_scale", self.guidance_scale, 0)
        check_option("huber_c", self.huber_c, 0, lo_open=True)
        check_option("target_decay", self.target_decay, 0, 1)
        if self.target_decay == 1:
            raise UserError("option target_decay must be < 1 (a target that never moves), got 1")
        check_flag("ordered", self.ordered)
        if self.method not in METHODS:
            raise UserError(f"option method must be one of {', '.join(METHODS)}, got {self.method!r}")


@register
class DistillStage(DiffPortrait3DStage):
    name, grouped, switchable, Options = "distill", True, False, DistillOptions

    def __init__(self, pipe, options: DistillOptions | None = None, **kw):
        options = options or DistillOptions()
        if pipe.turbo_unet is None or pipe.turbo_view_modules is None:  # else: go on distilling the folder's student
            # copied together: the copy's view hooks then belong to the copied modules (and `attach` replaces them);
            # copied apart, the student backbone kept hooks of a third, orphaned copy of the teacher's modules
            unet, view_modules = copy.deepcopy((pipe.unet, pipe.view_modules))
            pipe.register_modules(turbo_unet=unet, turbo_view_modules=view_modules)
            pipe.install_processors()
        super().__init__(pipe, options=options, **kw)
        self.turbo_unet, self.turbo_view_modules = pipe.turbo_unet, pipe.turbo_view_modules
        self.turbo = TurboConfig(options.steps, options.guidance_scale, options.teacher_steps, METHODS[options.method])
        self.lcm = turbo_scheduler(pipe.scheduler.config, replace(self.turbo, solver="lcm"))  # its boundary scalings
        self._target = None  # the target network's weights, from the first after_step on

    def after_step(self):
        """Moves the target network (an EMA of the student; starts as the student, also after a resume)."""
        if self.opts.target_decay > 0:
            params = [p.detach() for p in self.trained().parameters()]
            if self._target is None:
                self._target = [p.clone() for p in params]
            else:
                torch._foreach_lerp_(self._target, params, 1 - self.opts.target_decay)

    @contextlib.contextmanager
    def _target_weights(self):
        """The student's modules with the target's weights swapped in (no copy of the modules and their hooks)."""
        if self._target is None:
            yield
            return
        params = list(self.trained().parameters())
        for p, w in zip(params, self._target):
            p.data, w.data = w.data, p.data
        try:
            yield
        finally:
            for p, w in zip(params, self._target):
                p.data, w.data = w.data, p.data

    def trained(self):
        return torch.nn.ModuleDict({"unet": self.pipe.turbo_unet, "view_modules": self.pipe.turbo_view_modules})

    def frozen(self):
        return [self.vae, self.unet, self.reference, self.controlnet, self.view_modules, self.prompt_embedding]

    def context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(self.view_modules.group(self.views))
        stack.enter_context(self.pipe.turbo_view_modules.group(self.views))
        return stack

    def _grid(self, batch, gens) -> torch.Tensor:
        """One timestep per group on the teacher's grid k-1, 2k-1, ..., 999 (validation: its fixed t, snapped)."""
        k = 1000 // self.turbo.teacher_steps
        if "timestep" in batch:
            idx = (torch.as_tensor(batch["timestep"]).reshape(-1).long() // k).clamp(0, self.turbo.teacher_steps - 1)
        else:
            idx = torch.cat([torch.randint(0, self.turbo.teacher_steps, (1,), generator=g) for g in gens])
        return (idx + 1) * k - 1

    def _uniform_t(self, batch, gens) -> torch.Tensor:
        """One timestep per group, uniform in 0..999 (validation: its fixed t)."""
        if "timestep" in batch:
            return torch.as_tensor(batch["timestep"]).reshape(-1).long()
        return torch.cat([torch.randint(0, self.lcm.config.num_train_timesteps, (1,), generator=g) for g in gens])

    def _consistency(self, x, t, eps):
        """f(x, t): LCMScheduler's boundary scalings on its x0 prediction, as turbo sampling computes it."""
        a = self.lcm.alphas_cumprod.to(x)[t].view(-1, 1, 1, 1)
        c_skip, c_out = self.lcm.get_scalings_for_boundary_condition_discrete(t.to(x).view(-1, 1, 1, 1))
        return c_skip * x + c_out * (x - (1 - a).sqrt() * eps) / a.sqrt()

    def _conditioning(self, nets, z_ref, x, t, ctx, cond, batch):
        bank = reference_bank(nets, z_ref, t[::self.views], ctx[: z_ref.shape[0]])
        return self._read(bank, x.shape[0], batch), control_residuals(nets, x, t, ctx, cond.to(x))

    def forward(self, batch, off: bool = False):
        nets, v, w = self.pipe.networks, self.views, self.turbo.guidance_scale
        student = Networks(self.pipe.turbo_unet, nets.reference_unet, nets.controlnet, self.pipe.turbo_view_modules, nets.position)
        ref, ref_views, target, target_views, cond = self._flatten(batch)
        gens = generators(batch)
        z_ref = self._latents(ref, ref_views, gens)
        z0 = self._latents(target, target_views, generators(batch, v))
        guidance = self.opts.method == "guidance"
        t = (self._uniform_t(batch, gens) if guidance else self._grid(batch, gens)).repeat_interleave(v)
        noise = torch.cat([torch.randn((v, *z0.shape[1:]), generator=g) for g in gens]).to(z0)
        ac = self.lcm.alphas_cumprod.to(z0)
        x_t = q_sample(z0, noise, ac, t)
        ctx = self.prompt_embedding(x_t.shape[0]).to(x_t)
        with torch.no_grad():
            read, res = self._conditioning(nets, z_ref, x_t, t, ctx, cond, batch)
            eps_c = backbone_eps(nets, x_t, t, ctx, v, read, res)
            eps_w = eps_c if w == 1.0 else backbone_eps(nets, x_t, t, ctx, v) * (1 - w) + w * eps_c
        # a bank of its own: a bank keeps the keys and values of its first reader (the teacher, above), and the
        # student must read the reference through its own W_K, W_V, as it does when it samples
        own = replace(read, bank=ReferenceBank(read.bank))
        if guidance:
            loss = torch.nn.functional.mse_loss(backbone_eps(student, x_t, t, ctx, v, own, res).float(), eps_w.float())
            return loss, {"loss": loss.item(), "t_mean": t.float().mean().item()}
        t_prev = (t - 1000 // self.turbo.teacher_steps).clamp(min=0)
        with torch.no_grad():
            a, a_prev = ac[t].view(-1, 1, 1, 1), ac[t_prev].view(-1, 1, 1, 1)
            x_prev = a_prev.sqrt() * (x_t - (1 - a).sqrt() * eps_w) / a.sqrt() + (1 - a_prev).sqrt() * eps_w  # DDIM, eta 0
            read_prev, res_prev = self._conditioning(nets, z_ref, x_prev, t_prev, ctx, cond, batch)
            with self._target_weights():
                eps_target = backbone_eps(student, x_prev, t_prev, ctx, v, read_prev, res_prev)
            target_f = self._consistency(x_prev, t_prev, eps_target)
        pred_f = self._consistency(x_t, t, backbone_eps(student, x_t, t, ctx, v, own, res))
        c = self.opts.huber_c
        loss = (torch.sqrt((pred_f.float() - target_f.float()) ** 2 + c * c) - c).mean()
        return loss, {"loss": loss.item(), "t_mean": t.float().mean().item()}

    @torch.no_grad()
    def samples(self, batch, steps):
        return []

    def export(self, folder):
        self.pipe.register_to_config(turbo=asdict(self.turbo))
        self.pipe.save_pretrained(folder)

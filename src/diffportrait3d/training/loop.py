"""The training loop, flat and visible: accelerate for devices / mixed precision / processes,
AdamW, warm-up, gradient accumulation and clipping, optional EMA, atomic checkpoints with exact
resume, CSV/TensorBoard logs, sample grids and a loss curve.

Multi-GPU: `accelerate launch -m diffportrait3d.cli.main train ...` runs one process per GPU;
gradients of the trained parameters are averaged across processes after each backward (DDP
semantics), which also covers view modules that run inside the frozen backbone through hooks.
"""

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..atomic import atomic_folder, atomic_path
from ..errors import UserError
from ..media import grid
from .batches import batches
from .checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .logs import TrainLog

logger = logging.getLogger(__name__)


def train(cfg: TrainConfig, stage, dataset, resume: bool = False, progress: bool = True) -> dict:
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum, cpu=not torch.cuda.is_available())
    out = Path(cfg.output)
    stage.to(acc.device)
    module, params = stage.trainable(), stage.parameters()
    if not params:
        raise UserError(f"stage {cfg.stage} has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_scheduler("constant_with_warmup", opt, num_warmup_steps=cfg.warmup_steps)
    ema = EMAModel(params, decay=cfg.ema_decay) if cfg.ema_decay > 0 else None

    step = 0
    ckpts = list_checkpoints(out / "checkpoints")
    if resume and ckpts:
        step = load_checkpoint(ckpts[-1], module, opt, sched, ema)
        logger.warning("resumed from %s (step %d)", ckpts[-1], step)
    elif resume:
        logger.warning("--resume: no checkpoint in %s, starting at step 0", out / "checkpoints")
    log = TrainLog(out / "logs", resume_step=step) if acc.is_main_process else None

    data = batches(dataset, cfg.batch_size, cfg.seed, start=step * cfg.grad_accum)
    bar = tqdm(total=cfg.max_steps, initial=step, desc=f"train {cfg.stage}", disable=not (progress and acc.is_main_process))
    last_good, t0, losses, start = (ckpts[-1] if resume and ckpts else None), time.perf_counter(), [], step
    try:
        while step < cfg.max_steps:
            total = 0.0
            for _ in range(cfg.grad_accum):
                k, batch = next(data)
                gen = torch.Generator().manual_seed(cfg.seed * 7_919 + k)  # noise/timesteps of micro-batch k
                with stage.context(), acc.autocast():
                    loss, info = stage.loss(batch, gen)
                    if not math.isfinite(loss.item()):
                        raise FloatingPointError(f"loss is {loss.item()} at step {step}")
                    acc.backward(loss / cfg.grad_accum)
                total += loss.item() / cfg.grad_accum
            if acc.num_processes > 1:
                for p in params:
                    if p.grad is not None:
                        p.grad = acc.reduce(p.grad, reduction="mean")
            acc.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if ema is not None:
                ema.step(params)
            step += 1
            losses.append(total)
            bar.update()
            rate = (step - start) / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{total:.4f}", steps_s=f"{rate:.2f}")
            if log is not None and (step % cfg.log_every == 0 or step == cfg.max_steps):
                log.write(step, {"loss": sum(losses[-cfg.log_every:]) / len(losses[-cfg.log_every:]), "lr": sched.get_last_lr()[0],
                                 "steps_per_s": rate})
            if acc.is_main_process and (step % cfg.save_every == 0 or step == cfg.max_steps):
                last_good = save_checkpoint(out / "checkpoints", step, module, opt, sched, ema, asdict(cfg), cfg.keep_last)
            if acc.is_main_process and cfg.sample_every and step % cfg.sample_every == 0:
                write_samples(stage, batch, out / "samples" / f"step-{step:08d}.png", cfg.sample_steps)
    except FloatingPointError as e:
        where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
        raise UserError(f"training stopped: {e}; {where} (lower --lr or use --mixed-precision no)") from None
    finally:
        bar.close()
    result = {"step": step, "final_loss": losses[-1] if losses else None, "checkpoint": str(last_good) if last_good else None}
    if acc.is_main_process:
        export(stage, out / "model", ema, params)
        if log is not None:
            result["loss_curve"] = str(log.plot(f"{cfg.stage} stage"))
            log.close()
    return result


def export(stage, folder: Path, ema, params):
    """The trained model folder (EMA weights when EMA is on), written atomically per file."""
    if ema is not None:
        ema.store(params)
        ema.copy_to(params)
    try:
        with atomic_folder(folder) as tmp:
            stage.export(tmp)
    finally:
        if ema is not None:
            ema.restore(params)


def write_samples(stage, batch, path: Path, steps: int):
    rows = stage.samples(batch, steps)
    if rows:
        with atomic_path(path) as tmp:
            grid(rows).save(tmp)

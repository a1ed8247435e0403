"""The training loop, flat and visible, built the way accelerate intends: the stage (one nn.Module
whose forward returns the loss), AdamW, the lr schedule and a DataLoader go through
`accelerator.prepare`; `accelerator.accumulate` and `accelerator.backward` handle gradient
accumulation and the fp16 loss scale; `accelerator.clip_grad_norm_` unscales before clipping. So
DDP, FSDP or DeepSpeed chosen with `accelerate config` / `accelerate launch` need no code change
(configs/accelerate/, README "Several GPUs or nodes").

Data: each process gets its own shard of every global batch (accelerate's BatchSamplerShard over a
sampler seeded by (seed, epoch)); each sample carries a seed from (seed, epoch, index) for its noise
and timestep (training/datasets.py: SeededItems). So N processes x batch B, or grad_accum micro-
batches, compute the gradient of the same global batch of N x B samples with the same noise.
Resume is exact: step, weights, optimiser, schedule, EMA, loss scale from the checkpoint; the data
position from the step.
"""

import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm

from ..atomic import atomic_folder, atomic_path
from ..errors import UserError
from ..media import grid
from .checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .datasets import SeededItems
from .latent_cache import attach_latent_cache
from .logs import TrainLog
from .validation import gap_stalled, validate, validation_batch

logger = logging.getLogger(__name__)


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin

    # accelerate keeps its settings in process-wide singletons: a second train() in one process
    # (tests, scripts) would silently keep the first one's mixed precision and accumulation
    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(
        mixed_precision=cfg.mixed_precision or None,  # None: accelerate's config / `accelerate launch` flag
        # step boundaries from our step count, not from epoch ends (resume, equal steps)
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=cfg.grad_accum, sync_with_dataloader=False),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.seed),
        cpu=not torch.cuda.is_available(),
    )


def check_launcher(num_processes: int, env=os.environ) -> None:
    """`accelerate launch --num_processes N` with its simple launcher (e.g. `--cpu` without MPI) starts
    ONE process, which would silently train with a 1-process batch and schedule. That launcher sets
    MASTER_ADDR only when it was asked for several processes, and torchrun / multi-GPU launchers set
    WORLD_SIZE: so MASTER_ADDR without WORLD_SIZE in one accelerate-launched process is that case."""
    if num_processes == 1 and "ACCELERATE_USE_CPU" in env and "MASTER_ADDR" in env and "WORLD_SIZE" not in env:
        raise UserError("accelerate launch asked for several processes but started one (its CPU mode needs mpirun); "
                        "start them with: torchrun --nproc_per_node N -m diffportrait3d.cli.main train ... "
                        "(or accelerate launch --multi_gpu on GPUs)")


def make_loader(cfg: TrainConfig, dataset, num_processes: int) -> DataLoader:
    """Global batches of batch_size x num_processes in a (seed, epoch) order; prepare() shards them."""
    data = SeededItems(dataset, cfg.seed)
    # tiny sets: wrap around so that every epoch has at least one optimiser step's samples
    n = max(len(data), cfg.batch_size * cfg.grad_accum * num_processes)
    return DataLoader(data, batch_size=cfg.batch_size, sampler=RandomSampler(data, num_samples=n), drop_last=True,
                      num_workers=cfg.workers, persistent_workers=False)


def micro_batches(acc, loader, start: int):
    """This process's micro-batches forever, from micro-batch `start` (resume)."""
    per_epoch = len(loader)
    epoch, pos = divmod(start, per_epoch)
    while True:
        loader.set_epoch(epoch)          # the sampler's permutation
        loader.dataset.set_epoch(epoch)  # the per-sample seeds and dataset draws (workers copy it at iter)
        yield from (acc.skip_first_batches(loader, pos) if pos else loader)
        epoch, pos = epoch + 1, 0


def make_scheduler(cfg: TrainConfig, opt, num_processes: int):
    from diffusers.optimization import get_scheduler

    # a prepared scheduler steps once per process per optimiser step (accelerate's convention for
    # schedules counted in single-process batches): count in those units so warm-up is in steps
    if cfg.decay_steps:  # warm-up, stable, decay: not among diffusers' schedules
        warm, total, decay = (n * num_processes for n in (cfg.warmup_steps, cfg.max_steps, cfg.decay_steps))
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / warm if warm else 1.0, (total - s) / decay))
    name = {"constant": "constant_with_warmup", "cosine": "cosine", "linear": "linear"}[cfg.lr_schedule]
    return get_scheduler(name, opt, num_warmup_steps=cfg.warmup_steps * num_processes,
                         num_training_steps=cfg.max_steps * num_processes)


def train(cfg: TrainConfig, stage, dataset, resume: bool = False, progress: bool = True, val_dataset=None) -> dict:
    from diffusers.training_utils import EMAModel

    acc = make_accelerator(cfg)
    check_launcher(acc.num_processes)
    out = Path(cfg.output)
    with acc.main_process_first():  # the main process encodes the latent cache; the others then load it
        attach_latent_cache(cfg, stage, dataset, progress=progress and acc.is_main_process)
    params = stage.trained_parameters()
    if not params:
        raise UserError(f"stage {cfg.stage} has no trainable parameters")
    opt = torch.optim.AdamW(stage.param_groups(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(cfg, opt, acc.num_processes)
    loader = make_loader(cfg, dataset, acc.num_processes)
    model, opt, loader, sched = acc.prepare(stage, opt, loader, sched)
    ema = EMAModel(params, decay=cfg.ema_decay) if cfg.ema_decay > 0 else None

    step = 0
    ckpts = list_checkpoints(out / "checkpoints")
    if resume and ckpts:
        step = load_checkpoint(ckpts[-1], stage.trained(), opt, sched, ema, acc.scaler)
        logger.warning("resumed from %s (step %d)", ckpts[-1], step)
    elif resume:
        logger.warning("--resume: no checkpoint in %s, starting at step 0", out / "checkpoints")
    log = TrainLog(out / "logs", resume_step=step) if acc.is_main_process else None
    val_batch = None
    if log is not None and cfg.val_every:  # on the training device, as the prepared loader's batches are
        from accelerate.utils import send_to_device

        val_batch = send_to_device(validation_batch(stage, cfg, val_dataset), acc.device)

    last_val = {}

    def validation():  # fixed batch, t and noise: moves only when the weights do (training/validation.py)
        values = validate(stage, val_batch, last_val.get("val_off"))
        last_val.update(values)
        log.write_val(step, values)
        tqdm.write(f"step {step}: " + "  ".join(f"{k} {v:.5f}" for k, v in values.items()))

    if val_batch is not None and step == 0:
        validation()

    data = micro_batches(acc, loader, step * cfg.grad_accum)
    bar = tqdm(total=cfg.max_steps, initial=step, desc=f"train {cfg.stage}", disable=not (progress and acc.is_main_process))
    last_good, t0, losses, start, total = (ckpts[-1] if resume and ckpts else None), time.perf_counter(), [], step, 0.0
    deadline = t0 + 60 * cfg.max_minutes if cfg.max_minutes else None
    last = step >= cfg.max_steps  # resumed from the final checkpoint: nothing left to do
    try:
        while not last:
            batch = next(data)
            # context: entered around forward AND backward (recomputation under gradient checkpointing)
            with acc.accumulate(model), stage.context():
                loss, info = model(batch)
                mean = acc.reduce(loss.detach(), reduction="mean").item()  # for the log; the same on every process
                if not math.isfinite(mean):
                    raise FloatingPointError(f"loss is {mean} at step {step}")
                acc.backward(loss)  # divides by grad_accum; DDP averages across processes
                if acc.sync_gradients:
                    acc.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()  # no-ops until the last micro-batch of a step
                sched.step()
                opt.zero_grad(set_to_none=True)
            total += mean / cfg.grad_accum
            if not acc.sync_gradients:
                continue
            if ema is not None:
                ema.step(params)
            stage.after_step()
            step += 1
            losses.append(total)
            bar.update()
            rate = (step - start) / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{total:.4f}", steps_s=f"{rate:.2f}")
            total = 0.0
            last = step == cfg.max_steps or (deadline is not None and any_process(acc, time.perf_counter() > deadline))
            if log is not None and (step % cfg.log_every == 0 or last):
                log.write(step, {"loss": sum(losses[-cfg.log_every:]) / len(losses[-cfg.log_every:]), "lr": sched.get_last_lr()[0],
                                 "steps_per_s": rate})
            if cfg.val_every and (step % cfg.val_every == 0 or last):
                if val_batch is not None:
                    validation()
                if cfg.val_patience and not last:  # the main process decides, every process stops at this step
                    last = any_process(acc, log is not None and gap_stalled(log.read_val(), cfg.val_patience))
            if acc.is_main_process and (step % cfg.save_every == 0 or last):
                last_good = save_checkpoint(out / "checkpoints", step, stage.trained(), opt, sched, ema, asdict(cfg), cfg.keep_last,
                                            acc.scaler)
            if acc.is_main_process and cfg.sample_every and step % cfg.sample_every == 0:
                write_samples(stage, batch, out / "samples" / f"step-{step:08d}.png", cfg.sample_steps)
    except FloatingPointError as e:
        where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
        raise UserError(f"training stopped: {e}; {where} (lower --lr or use --set mixed_precision=no)") from None
    finally:
        bar.close()
    acc.wait_for_everyone()
    result = {"step": step, "final_loss": losses[-1] if losses else None, "checkpoint": str(last_good) if last_good else None}
    if acc.is_main_process:
        export(stage, out / "model", ema, params)
        if log is not None:
            result["loss_curve"] = str(log.plot(f"{cfg.stage} stage"))
            log.close()
    return result


def any_process(acc, flag: bool) -> bool:
    """Whether `flag` holds on any process (a deadline passed, validation stalled): all stop at the same step."""
    flags = torch.tensor(float(flag), device=acc.device)
    return acc.reduce(flags, reduction="sum").item() > 0


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

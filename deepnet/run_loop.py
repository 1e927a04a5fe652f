"""The loop of one fine-tuning run: :class:`RunLoop`, behind :func:`deepnet.train.train` (whose
module docstring says what a run does), and the rules it applies at each step and epoch."""
from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any, ContextManager

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from common.io import write_json
from common.provenance import git_commit
from deepnet import distributed
from deepnet.config import RunConfig
from deepnet.distributed import DistContext
from deepnet.evaluate import evaluate_run
from deepnet.features import frozen_features
from deepnet.methods import Method, ProbeData, get_method
from deepnet.metrics_log import MetricsLog, eval_scalars, grad_norm_scalars
from deepnet.progress import progress_bar, progress_bars
from deepnet.results import environment, split_fingerprint
from deepnet.run_checkpoint import RunCheckpoints
from deepnet.run_files import RESULT
from deepnet.run_inputs import RunInputs, resolve_data_root
from deepnet.runtime import epoch_seed, resolve_device, seed_everything, seed_worker
from deepnet.sweep.states import DIVERGED, OK

DIVERGENCE_FACTOR = 100.0


def divergence_bound(first_loss: float, num_classes: int) -> float:
    """The training loss above which a run counts as diverged.

    ``DIVERGENCE_FACTOR`` (100) times the larger of the run's first step loss and ln(num_classes),
    the cross-entropy of a uniform guess: a step loss 100x above both means the logits have
    blown up (healthy runs stay within a small multiple of their initial loss).

    Examples
    --------
    >>> round(divergence_bound(0.5, 2), 2)   # 100 x ln 2
    69.31
    >>> divergence_bound(3.0, 2)
    300.0
    """
    return DIVERGENCE_FACTOR * max(first_loss, math.log(num_classes))


def epoch_line(name: str, epoch: int, epochs: int, entry: dict[str, Any]) -> str:
    """The one line an epoch prints without progress bars.

    Examples
    --------
    >>> epoch_line("m-d-sgd-lr0.01-s0", 0, 2, {"steps": 3, "train_loss": 0.6931, "last_lr": 0.005,
    ...            "id_val": 0.5, "id_test": 0.25, "ood": {"ood_test": 0.5}, "time_s": 1.25})
    'm-d-sgd-lr0.01-s0 epoch 1/2 step 3 loss 0.6931 lr 0.005 id_val 0.500 id_test 0.250 ood_test 0.500 (1.2s)'
    """
    ood = "".join(f" {name} {value:.3f}" for name, value in entry["ood"].items())
    return (f"{name} epoch {epoch + 1}/{epochs} step {entry['steps']} loss {entry['train_loss']:.4f} "
            f"lr {entry['last_lr']:.3g} id_val {entry['id_val']:.3f} id_test {entry['id_test']:.3f}{ood} "
            f"({entry['time_s']:.1f}s)")


class RunLoop:
    """One run's state and loop (:func:`deepnet.train.train` says what it does); split into steps
    so each is short enough to read."""

    def __init__(self, cfg: RunConfig, run_dir: Path, ctx: DistContext, inputs: RunInputs,
                 progress: bool, keep_checkpoint: bool) -> None:
        self.cfg, self.run_dir, self.ctx, self.inputs = cfg, run_dir, ctx, inputs
        self.progress = progress and ctx.is_main
        self.keep_checkpoint = keep_checkpoint
        self.method: Method = get_method(cfg.method).configure(cfg)
        self.device = resolve_device(cfg.device, ctx)
        self.checkpoints = RunCheckpoints(run_dir, ctx, self.device)
        self.epochs = cfg.epochs or inputs.epochs
        per_step = cfg.grad_accum * ctx.world_size
        if cfg.batch_size % per_step:
            raise ValueError(
                f"batch_size {cfg.batch_size} (examples per optimizer step) must be divisible by "
                f"grad_accum x processes = {cfg.grad_accum} x {ctx.world_size}"
            )
        self.micro_batch = cfg.batch_size // per_step
        missing = {"train", "id_val", "id_test", *inputs.ood_splits} - set(inputs.splits)
        if missing:
            raise ValueError(f"dataset splits missing {sorted(missing)}; got {sorted(inputs.splits)}")

        seed_everything(cfg.seed)
        bundle = inputs.bundle
        self.layer_map = bundle.layer_map
        self.model: nn.Module = bundle.model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.grad_checkpointing:
            self._enable_grad_checkpointing()
        if cfg.compile:
            self.model.compile()  # in place: parameter and state-dict names stay those of the model
        self.method.apply_freezing(self.model, self.layer_map)
        wd = self.method.weight_decay if cfg.weight_decay is None else cfg.weight_decay
        self.optimizer = self.method.build_optimizer(self.model, self.layer_map, cfg.lr, wd,
                                                     fused=cfg.fused_optimizer)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

        self.sampler = DistributedSampler(inputs.splits["train"], num_replicas=ctx.world_size, rank=ctx.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=False)
        self.train_loader = DataLoader(inputs.splits["train"], batch_size=self.micro_batch, sampler=self.sampler,
                                       num_workers=cfg.num_workers, worker_init_fn=seed_worker,
                                       pin_memory=self.device.type == "cuda",
                                       persistent_workers=cfg.persistent_workers)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / cfg.grad_accum)
        self.total_steps = self.steps_per_epoch * self.epochs
        if cfg.max_train_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_train_steps)

        self.start_epoch, self.step = 0, 0
        self.first_loss: float | None = None
        self.divergence: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.stage_info: dict[str, Any] = {}
        self.status = OK
        self.elapsed = 0.0
        self.log: MetricsLog | None = None

    # --- setup helpers ----------------------------------------------------------------------
    def _enable_grad_checkpointing(self) -> None:
        for module in (self.model, getattr(self.model, "backbone", None)):
            if module is not None and hasattr(module, "set_grad_checkpointing"):
                module.set_grad_checkpointing(True)
                return
        raise ValueError(f"model {self.cfg.model!r} does not support gradient checkpointing")

    def _amp_dtype(self) -> torch.dtype | None:
        if not (self.cfg.amp and self.device.type == "cuda"):
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self) -> ContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # --- checkpoints ------------------------------------------------------------------------
    def _save_checkpoint(self, next_epoch: int) -> None:
        if self.ctx.is_main:
            self.checkpoints.write({
                "config": self.cfg.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "epoch": next_epoch,
                "step": self.step,
                "history": self.history,
                "stage_info": self.stage_info,
                "status": self.status,
                "elapsed": self.elapsed,
                "first_loss": self.first_loss,
            })
            self.log.sync()
        distributed.barrier(self.ctx)

    def _load_checkpoint(self) -> bool:
        state = self.checkpoints.read()
        if state is None:
            return False
        if RunConfig.from_dict(state["config"]).key() != self.cfg.key():
            raise ValueError(f"{self.checkpoints.path} belongs to a different config; use another run dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.step = state["epoch"], state["step"]
        self.history, self.stage_info = state["history"], state["stage_info"]
        self.status, self.elapsed = state["status"], state["elapsed"]
        self.first_loss = state.get("first_loss")  # None in checkpoints written before it was kept
        return True

    # --- stages -----------------------------------------------------------------------------
    def _probe_data(self) -> ProbeData:
        train_x, train_y = self._features(self.inputs.probe_train())
        val_x, val_y = self._features(self.inputs.splits["id_val"])
        return ProbeData(train_x, train_y, val_x, val_y, self.inputs.num_classes)

    def _features(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Frozen backbone features of a whole split (every rank computes all, so heads agree)."""
        loader = DataLoader(dataset, batch_size=self.micro_batch, shuffle=False, num_workers=self.cfg.num_workers)
        batches = progress_bar(loader, desc="features")
        return frozen_features(self.model, ((self._to_device(x), y) for x, y, _ in batches), self._autocast)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def _train_epoch(self, epoch: int, net: nn.Module) -> float | None:
        """One epoch of optimizer steps; returns the mean training loss, or None if it diverged."""
        cfg = self.cfg
        self.model.train(not self.method.net_val_mode)
        self.sampler.set_epoch(epoch)
        batches = iter(self.train_loader)
        n_micro = len(self.train_loader)
        loss_fn = nn.CrossEntropyLoss()
        loss_sum, n_steps = 0.0, 0
        bar = progress_bar(total=min(self.steps_per_epoch, self.total_steps - self.step), desc=f"epoch {epoch}")
        for s in range(self.steps_per_epoch):
            if self.step >= self.total_steps:
                break
            factor = self.method.lr_factor(self.step, self.total_steps, epoch, self.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * group["lr_mult"] * factor
            count = min(cfg.grad_accum, n_micro - s * cfg.grad_accum)
            step_loss = torch.zeros(2, dtype=torch.float64)  # [loss sum, non-finite flag]
            for j in range(count):
                x, y, _ = next(batches)
                x, y = self._to_device(x), y.to(self.device, non_blocking=True)
                sync = j == count - 1 or not self.ctx.enabled
                with contextlib.nullcontext() if sync else net.no_sync():
                    with self._autocast():
                        loss = loss_fn(net(x).float(), y)
                    if not torch.isfinite(loss):
                        step_loss[1] = 1.0
                    scaled = loss / count
                    (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                step_loss[0] += float(loss.detach()) / count
            distributed.all_reduce(step_loss, self.ctx)
            loss_now = float(step_loss[0]) / self.ctx.world_size
            if self.first_loss is None and step_loss[1] == 0:
                self.first_loss = loss_now
            bound = divergence_bound(self.first_loss or 0.0, self.inputs.num_classes)
            if step_loss[1] > 0 or loss_now > bound:
                self.divergence = {"step": self.step, "epoch": epoch, "loss": loss_now if step_loss[1] == 0 else None,
                                   "bound": bound}
                self.optimizer.zero_grad(set_to_none=True)
                bar.close()
                return None
            grad_norms = None
            if cfg.log_grad_norms and self.ctx.is_main:
                grad_norms = grad_norm_scalars(self.model, self.layer_map.kind_of(),
                                               self.scaler.get_scale() if self.scaler else 1.0)
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            n_steps += 1
            loss_sum += loss_now
            self.log.step(self.step, epoch, loss_now, cfg.lr * factor, grad_norms)
            every = cfg.eval_every
            if every and self.step % every == 0 and s < self.steps_per_epoch - 1 and self.step < self.total_steps:
                self._evaluate_mid_epoch(epoch)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n_steps:.4f}")
        bar.close()
        return loss_sum / max(n_steps, 1)

    def _evaluate_mid_epoch(self, epoch: int) -> None:
        """An ``eval_every`` evaluation, logged only; the RNG streams and train mode are restored, so
        training continues as without it."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            self.log.evaluation(self.step, epoch, eval_scalars(self._evaluate_all()))
        self.model.train()

    def _evaluate_all(self) -> dict[str, Any]:
        """ID val / ID test accuracy and each OOD split's dataset metric (plus plain OOD accuracy)."""
        return evaluate_run(self.model, self.inputs, self.device, self.micro_batch, self.cfg.num_workers, self.ctx,
                            self._autocast, self.cfg.channels_last)

    # --- the run ----------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        t0 = time.time()
        resumed = self._load_checkpoint()
        self.log = MetricsLog(self.run_dir, self.step if resumed else None, self.cfg.tensorboard, self.ctx.is_main)
        try:
            with progress_bars(self.progress):
                return self._stages(t0, resumed)
        finally:
            self.log.close()

    def _stages(self, t0: float, resumed: bool) -> dict[str, Any]:
        if not resumed and self.method.needs_probe_data:
            self.stage_info = self.method.prepare(self.model, self._probe_data())
        if not self.method.fine_tunes:
            if not self.history:
                self.history.append({"epoch": 0, "train_loss": None, "last_lr": None, "steps": 0, **self._evaluate_all()})
                self.log.evaluation(0, 0, eval_scalars(self.history[-1]))
            return self._finish(t0)
        epochs = range(self.start_epoch, self.epochs)
        bar = progress_bar(epochs, desc=self.cfg.run_name(), leave=True)
        for epoch in bar:
            if self.status != OK or self.step >= self.total_steps:
                break
            seed_everything(epoch_seed(self.cfg.seed, epoch, self.ctx.rank))
            self.method.on_epoch_start(self.model, self.layer_map, epoch, self.epochs)
            net = distributed.wrap(self.model, self.ctx, self.device)
            t_epoch = time.time()
            train_loss = self._train_epoch(epoch, net)
            if train_loss is None:
                self.status = DIVERGED
                break
            last = self.optimizer.param_groups[0]
            entry = {"epoch": epoch, "train_loss": train_loss, "last_lr": last["lr"] / last["lr_mult"],
                     "steps": self.step, **self._evaluate_all(), "time_s": time.time() - t_epoch}
            self.history.append(entry)
            self.log.evaluation(self.step, epoch, eval_scalars(entry))
            bar.set_postfix(id_val=f"{entry['id_val']:.3f}", ood_avg=entry["ood_avg"])
            if not self.progress and self.ctx.is_main:
                print(epoch_line(self.cfg.run_name(), epoch, self.epochs, entry), file=sys.stderr, flush=True)
            self.elapsed += time.time() - t0
            t0 = time.time()
            self._save_checkpoint(epoch + 1)
        bar.close()
        return self._finish(t0)

    def _finish(self, t0: float) -> dict[str, Any]:
        self.elapsed += time.time() - t0
        best = max(self.history, key=lambda h: h["id_val"], default=None)  # first maximum wins ties
        keys = ("id_val", "id_test", "ood", "ood_avg", "worst_group")
        record = {
            "config": self.cfg.to_dict(),
            "status": self.status,
            "best_epoch": best["epoch"] if best else None,
            "metrics": {k: best[k] for k in keys} if best else {k: None for k in keys},
            "history": self.history,
            "commit": git_commit(),
            "data": split_fingerprint(self.inputs.splits, resolve_data_root(self.cfg.data_root, self.cfg.dataset)),
            "env": {**environment(self.device), "world_size": self.ctx.world_size,
                    "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None},
            "time_s": self.elapsed,
        }
        if self.stage_info:
            record["stage_info"] = self.stage_info
        if self.divergence:
            record["divergence"] = self.divergence
        if self.ctx.is_main:
            write_json(self.run_dir / RESULT, record)
            self.checkpoints.remove(keep_latest=self.keep_checkpoint)
        distributed.barrier(self.ctx)
        return record

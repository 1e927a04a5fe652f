"""A run's curves: ``metrics.jsonl`` beside ``result.json`` (and optionally TensorBoard events).

Two kinds of line, each a JSON object with ``kind``, ``step`` (optimizer steps done) and ``epoch``:

* ``{"kind": "step", "step": 3, "epoch": 0, "loss": 0.69, "lr": 0.01}``, after every optimizer step
  (``lr`` is the base learning rate of the schedule, before per-group multipliers); with
  ``log_grad_norms`` also ``"grad_norm/embed"``, ``"grad_norm/middle"`` and ``"grad_norm/head"``
  (:func:`grad_norm_scalars`);
* ``{"kind": "eval", "step": 6, "epoch": 1, "id_val": 0.5, "id_test": 0.5, "ood/NAME": 0.4, ...}``
  after every evaluation (each epoch, and every ``eval_every`` steps): ID val and ID test accuracy
  and each OOD split's dataset metric under ``ood/<split>``.

Guarantee: lines are appended line-buffered as they happen and the file is fsynced at every
evaluation and checkpoint, so a crashed run keeps at least everything up to its last checkpoint
(usually more). A resumed run first drops the lines past the checkpoint's step (and a torn last
line), so the steps it replays are not logged twice.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.io import write_text
from deepnet.run_files import METRICS, TENSORBOARD_DIR

if TYPE_CHECKING:
    from torch import nn

GRAD_NORM = "grad_norm/"
KINDS = ("embed", "middle", "head")  # the layer-map kinds, bottom -> top


class TensorBoardUnavailable(ImportError):
    """``--tensorboard`` without the ``tensorboard`` package."""


def eval_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalars of an evaluation (:meth:`deepnet.run_loop.RunLoop._evaluate_all`'s dict) as logged:
    ``id_val``, ``id_test`` and ``ood/<split>`` per OOD split."""
    return {"id_val": metrics["id_val"], "id_test": metrics["id_test"],
            **{f"ood/{name}": value for name, value in metrics["ood"].items()}}


def grad_norm_scalars(model: "nn.Module", kind_of: dict[str, str], scale: float = 1.0) -> dict[str, float]:
    """The L2 norm of the gradients of each layer-map kind, as logged with a step.

    Parameters
    ----------
    model : nn.Module
        The model after its backward passes, before the optimizer step.
    kind_of : dict of str to str
        Parameter name -> ``"embed"``, ``"middle"`` or ``"head"`` (``LayerMap.kind_of()``).
    scale : float, default 1.0
        The loss scale of a gradient scaler (gradients are divided by it).

    Returns
    -------
    dict of str to float
        ``grad_norm/<kind>``: the norm over all parameters of the kind that have a gradient, in
        :data:`KINDS` order; a kind without gradients (frozen) is left out.
    """
    import torch

    grads: dict[str, list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            grads.setdefault(kind_of[name], []).append(torch.linalg.vector_norm(p.grad.detach().float()))
    return {GRAD_NORM + kind: float(torch.linalg.vector_norm(torch.stack(grads[kind]))) / scale
            for kind in KINDS if kind in grads}


class MetricsLog:
    """Appends a run's step and evaluation scalars to ``run_dir/metrics.jsonl``.

    Parameters
    ----------
    run_dir : Path
        The run directory.
    resume_step : int or None
        None: a fresh run (an old file is replaced). Else the checkpoint's step: lines past it are
        dropped before appending.
    tensorboard : bool, default False
        Also write the scalars as TensorBoard events under ``run_dir/tensorboard``; events an
        earlier process wrote there past ``resume_step`` (all of them for a fresh run) are purged
        as the lines of ``metrics.jsonl`` are, so TensorBoard shows what the file holds.
    enabled : bool, default True
        False (non-main DDP ranks): log nothing.

    Raises
    ------
    TensorBoardUnavailable
        ``tensorboard`` requested but the package is not installed.
    """

    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool = False,
                 enabled: bool = True) -> None:
        self.path = Path(run_dir) / METRICS
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise TensorBoardUnavailable(
                    "--tensorboard needs the tensorboard package: pip install tensorboard") from err
            # TensorBoard hides the events at and past purge_step that earlier writers left
            self._tb = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR),
                                     purge_step=0 if resume_step is None else resume_step + 1)
        kept = _lines_up_to(self.path, resume_step) if resume_step is not None else []
        write_text(self.path, "".join(kept))
        self._file = open(self.path, "a", buffering=1)

    def step(self, step: int, epoch: int, loss: float, lr: float,
             grad_norms: dict[str, float] | None = None) -> None:
        """Log one optimizer step (``step`` counts the steps done, so the first is 1), with its
        :func:`grad_norm_scalars` if given."""
        self._write({"kind": "step", "step": step, "epoch": epoch, "loss": loss, "lr": lr, **(grad_norms or {})})

    def evaluation(self, step: int, epoch: int, scalars: dict[str, float]) -> None:
        """Log one evaluation (:func:`eval_scalars`) and make the file durable."""
        self._write({"kind": "eval", "step": step, "epoch": epoch, **scalars})
        self.sync()

    def sync(self) -> None:
        """fsync the file (and flush the TensorBoard writer)."""
        if self.enabled:
            self._file.flush()
            os.fsync(self._file.fileno())
            if self._tb is not None:
                self._tb.flush()

    def close(self) -> None:
        if self.enabled:
            self.sync()
            self._file.close()
            if self._tb is not None:
                self._tb.close()

    def _write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            prefix = "train/" if record["kind"] == "step" else "eval/"
            for name, value in record.items():
                if name not in ("kind", "step", "epoch") and value is not None:
                    self._tb.add_scalar(prefix + name, value, record["step"])


def _lines_up_to(path: Path, step: int) -> list[str]:
    """The complete lines of ``path`` whose step is at most ``step`` (none if it is missing)."""
    if not path.exists():
        return []
    kept = []
    for line in path.read_text().splitlines(keepends=True):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # the torn last line of a crash
            continue
        if line.endswith("\n") and record.get("step", 0) <= step:
            kept.append(line)
    return kept


def read_metrics(run_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(step lines, eval lines)`` of ``run_dir/metrics.jsonl``, each in file order (a torn line is
    skipped)."""
    records = []
    for line in (Path(run_dir) / METRICS).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a crashed run's torn last line, or a blank one
            continue
    return ([r for r in records if r["kind"] == "step"], [r for r in records if r["kind"] == "eval"])

"""Run directories that make a sweep resumable (the DomainBed layout).

Each run lives in ``<root>/<RunConfig.key()>/``: ``config.json`` (what it runs), the trainer's own
``checkpoint.pt`` and ``result.json``, and a ``done`` marker. Finishing a run is three steps, in
this order: the trainer writes ``result.json`` atomically; the runner appends that record to
``<root>/results.jsonl``; the runner creates ``done``. Hence re-launching a sweep

- skips runs with ``done``;
- resumes interrupted runs (no ``result.json`` yet: the trainer picks up its ``checkpoint.pt``);
- only finishes the bookkeeping of runs that stopped between ``result.json`` and ``done`` (the
  record may then be appended twice; :mod:`deepnet.sweep.collect` keeps the last copy per config).

A sweep directory that was lost can be rebuilt from its records (e.g. a committed ``results.jsonl``):
:func:`adopt_records` turns each record whose config is one of the sweep's runs into that run's
``result.json`` and ``done``, so only the runs without a record train.

A run whose loss diverged is a finished run (``status: "diverged"`` in its record). A run whose
trainer raised an exception is recorded in ``error.txt`` and left unfinished, so the next launch
retries it; the sweep goes on with the other runs either way.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from deepnet.config import RunConfig
from common.io import append_jsonl, read_json, write_json

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
DONE_FILE = "done"
CHECKPOINT_FILE = "checkpoint.pt"
RESULTS_FILE = "results.jsonl"

TrainFn = Callable[..., dict]  # train(cfg: RunConfig, run_dir: Path, progress: bool) -> record


@dataclass
class RunOutcome:
    """What happened to one run in this launch: ok / diverged (trained), skipped (done before),
    failed, submitted (``--no-wait``), or secondary (a rank > 0 process of a distributed run)."""

    name: str
    key: str
    status: str
    run_dir: str
    error: str | None = None


def run_dir_of(root: str | Path, cfg: RunConfig) -> Path:
    """The run's directory under the sweep root, named by the config hash."""
    return Path(root) / cfg.key()


def run_state(root: str | Path, cfg: RunConfig) -> str:
    """``done``, ``interrupted`` (a checkpoint or result exists, not done), ``failed`` (last try
    raised) or ``new``."""
    run_dir = run_dir_of(root, cfg)
    if (run_dir / DONE_FILE).exists():
        return "done"
    if (run_dir / ERROR_FILE).exists():
        return "failed"
    if (run_dir / CHECKPOINT_FILE).exists() or (run_dir / RESULT_FILE).exists():
        return "interrupted"
    return "new"


def default_train_fn() -> TrainFn:
    """The real trainer, imported only when a run needs it."""
    from deepnet.train import train

    return train


def run_one(
    cfg: RunConfig,
    root: str | Path,
    train_fn: TrainFn | None = None,
    progress: bool = False,
    main_process: bool = True,
) -> RunOutcome:
    """Run (or resume, or skip) one config under ``root``; never raises for a failing trainer.

    In a run spread over several processes (torch distributed) every process calls this and
    trains; only the ``main_process`` (rank 0) keeps the books (error.txt, results.jsonl, done).
    """
    run_dir = run_dir_of(root, cfg)
    outcome = RunOutcome(name=cfg.run_name(), key=cfg.key(), status="skipped", run_dir=str(run_dir))
    if (run_dir / DONE_FILE).exists():
        return outcome
    if main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, cfg.to_dict())
    if not (run_dir / RESULT_FILE).exists():
        train = train_fn or default_train_fn()
        try:
            train(cfg, run_dir, progress=progress)
            if main_process and not (run_dir / RESULT_FILE).exists():
                raise RuntimeError(f"the trainer returned without writing {run_dir / RESULT_FILE}")
        except Exception as err:  # the sweep goes on; the error stays next to the run
            if main_process:
                (run_dir / ERROR_FILE).write_text(traceback.format_exc())
            outcome.status, outcome.error = "failed", f"{type(err).__name__}: {err}"
            return outcome
    if not main_process:
        outcome.status = "secondary"
        return outcome
    record: dict[str, Any] = read_json(run_dir / RESULT_FILE)
    _finish_books(root, run_dir, record)
    outcome.status = record.get("status", "ok")
    return outcome


def _finish_books(root: str | Path, run_dir: Path, record: dict) -> None:
    """The last two steps of finishing a run, whose ``result.json`` is written: append its record to
    ``results.jsonl``, then create ``done`` (a stale ``error.txt`` goes)."""
    append_jsonl(Path(root) / RESULTS_FILE, record)
    (run_dir / DONE_FILE).touch()
    (run_dir / ERROR_FILE).unlink(missing_ok=True)


def run_many(
    cfgs: list[dict], root: str, train_fn: TrainFn | None = None, progress: bool = False,
    threads: int | None = None,
) -> list[RunOutcome]:
    """Run configs (as dicts, so the call pickles plainly for submitit) one after another,
    with ``threads`` torch and BLAS threads when given (CPU workers sharing a machine)."""
    if threads is not None:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(threads)  # numpy/scipy BLAS, e.g. the linear probe's lbfgs; for this process
    return [run_one(RunConfig.from_dict(c), root, train_fn, progress) for c in cfgs]


def adopt_records(
    cfgs: list[RunConfig], root: str | Path, records: list[dict], dry_run: bool = False
) -> tuple[int, int]:
    """Mark runs finished from result records made elsewhere (same config hash), without training.

    Each record whose config is one of ``cfgs`` and not yet ``done`` under ``root`` is written as
    the run's ``config.json`` and ``result.json``, appended to ``results.jsonl``, and ``done`` is
    created, in the same order as a trained run; a config recorded more than once is adopted once,
    with its last record (as :func:`deepnet.sweep.collect.load_records` keeps). Returns
    ``(adopted, unmatched)``: runs adopted now, and configs none of ``cfgs`` (ignored). Runs
    already done count in neither.
    With ``dry_run`` nothing is written and the counts say what would be adopted.
    """
    by_key = {cfg.key(): cfg for cfg in cfgs}
    latest = {RunConfig.from_dict(record["config"]).key(): record for record in records}
    unmatched = sum(key not in by_key for key in latest)
    adopted = 0
    for key, record in latest.items():
        if key not in by_key:
            continue
        run_dir = run_dir_of(root, by_key[key])
        if (run_dir / DONE_FILE).exists():
            continue
        adopted += 1
        if dry_run:
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_FILE, by_key[key].to_dict())
        write_json(run_dir / RESULT_FILE, record)
        _finish_books(root, run_dir, record)
    return adopted, unmatched

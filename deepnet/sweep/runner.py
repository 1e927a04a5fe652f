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

One owner per run: a process trains a run only while it owns the run's ``lock`` file
(:func:`common.io.owned`, holder's host and pid recorded). Another launch on the same root skips
that run (status ``busy``) and moves on, so concurrent launches share the work; the lock of a
process that died is taken over. Under the lock, the run's stale temporary files (a writer killed
mid-write) are removed and an unreadable ``result.json`` is moved to ``result.json.corrupt``, so the
run trains again. Before a launch, :func:`check_done_runs` does the same for ``done`` runs and
stops when a done run was trained on other data than the current data root gives.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from common.io import (LockHeld, append_jsonl, is_held, move_aside, owned, read_json, remove_stale_temps,
                       write_json, write_text)
from common.shutdown import freeze_at_exit
from deepnet.config import RunConfig
from deepnet.run_files import (CHECKPOINT, CONFIG, CORRUPT_SUFFIX, DONE_MARKER, ERROR, LOCK, PREVIOUS_SUFFIX, RESULT,
                               SWEEP_RESULTS)
from deepnet.sweep.states import BUSY, DONE, FAILED, INTERRUPTED, NEW, OK, SECONDARY, SKIPPED

WATCH_S = 0.5  # how often a worker checks that its sweep process still lives

TrainFn = Callable[..., dict]  # train(cfg: RunConfig, run_dir: Path, progress: bool) -> record
FingerprintFn = Callable[[RunConfig], dict]  # the data a config trains on: {"root", "digest"}


class DataChangedError(ValueError):
    """Done runs were trained on other data than the current data root gives."""


@dataclass
class RunOutcome:
    """What happened to one run in this launch: ok / diverged (trained), skipped (done before),
    busy (another live process owns it; ``error`` names it), failed, submitted (``--no-wait``), or
    secondary (a rank > 0 process of a distributed run)."""

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
    if (run_dir / DONE_MARKER).exists():
        return DONE
    if (run_dir / ERROR).exists():
        return FAILED
    if any((run_dir / name).exists() for name in (CHECKPOINT, CHECKPOINT + PREVIOUS_SUFFIX, RESULT)):
        return INTERRUPTED
    return NEW


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

    The main process trains only while it owns the run's lock (else the outcome is ``busy``). In a
    run spread over several processes (torch distributed) every process calls this and trains;
    only the ``main_process`` (rank 0) locks and keeps the books (error.txt, results.jsonl, done).
    """
    run_dir = run_dir_of(root, cfg)
    outcome = RunOutcome(name=cfg.run_name(), key=cfg.key(), status=SKIPPED, run_dir=str(run_dir))
    if (run_dir / DONE_MARKER).exists():
        return outcome
    if not main_process:
        if _train(cfg, run_dir, train_fn, progress, outcome, main_process=False):
            outcome.status = SECONDARY
        return outcome
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with owned(run_dir / LOCK) as stale:
            if (run_dir / DONE_MARKER).exists():  # finished by another process since the check above
                return outcome
            if stale:
                warnings.warn(f"{run_dir}: took over the lock of {stale}, which died while running it", UserWarning)
            remove_stale_temps(run_dir)
            write_json(run_dir / CONFIG, cfg.to_dict())
            _set_aside_unreadable_result(run_dir)
            if _train(cfg, run_dir, train_fn, progress, outcome, main_process=True):
                record: dict[str, Any] = read_json(run_dir / RESULT)
                _finish_books(root, run_dir, record)
                outcome.status = record.get("status", OK)
    except LockHeld as held:
        outcome.status, outcome.error = BUSY, f"run by {held.holder or 'another process'}"
    return outcome


def _train(cfg: RunConfig, run_dir: Path, train_fn: TrainFn | None, progress: bool, outcome: RunOutcome,
           main_process: bool) -> bool:
    """Train unless ``result.json`` exists; False (``outcome`` failed, error.txt written) if it raised."""
    if not (run_dir / RESULT).exists():
        train = train_fn or default_train_fn()
        try:
            train(cfg, run_dir, progress=progress)
            if main_process and not (run_dir / RESULT).exists():
                raise RuntimeError(f"the trainer returned without writing {run_dir / RESULT}")
        except Exception as err:  # the sweep goes on; the error stays next to the run
            if main_process:
                write_text(run_dir / ERROR, traceback.format_exc())
            outcome.status, outcome.error = FAILED, f"{type(err).__name__}: {err}"
            return False
    return True


def _set_aside_unreadable_result(run_dir: Path) -> dict | None:
    """The run's record; an unreadable ``result.json`` is moved to ``result.json.corrupt`` (with a
    warning naming it) and None returned, as for a missing one."""
    path = run_dir / RESULT
    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except ValueError as err:
        with contextlib.suppress(FileNotFoundError):  # another launch set it aside first
            move_aside(path, CORRUPT_SUFFIX)
        (run_dir / DONE_MARKER).unlink(missing_ok=True)
        warnings.warn(f"{err}; moved to {path.name}{CORRUPT_SUFFIX}, the run is not done and trains again",
                      UserWarning)
        return None


def check_done_runs(cfgs: list[RunConfig], root: str | Path, fingerprint_fn: FingerprintFn | None = None,
                    accept_data_change: bool = False) -> None:
    """Check the records of the ``done`` runs among ``cfgs`` before a launch.

    An unreadable ``result.json`` is set aside (see :func:`run_one`) and its run is no longer done.
    A record whose data fingerprint differs from the one the run's dataset and data root give now
    (a run done on a fixture or an old copy) raises :class:`DataChangedError` naming both roots,
    unless ``accept_data_change``. Records without a fingerprint (made elsewhere, e.g. adopted)
    are not compared. ``fingerprint_fn`` defaults to :func:`deepnet.run_inputs.data_fingerprint` and
    is called once per (dataset, data root).

    Raises
    ------
    DataChangedError
        Listing, per (dataset, data root), the root recorded, the root now and one run directory.
    """
    current: dict[tuple, dict] = {}
    changed: dict[tuple, tuple[dict, dict, Path]] = {}
    for cfg in cfgs:
        run_dir = run_dir_of(root, cfg)
        if not (run_dir / DONE_MARKER).exists():
            continue
        record = _set_aside_unreadable_result(run_dir)
        recorded = (record or {}).get("data")
        if not recorded or accept_data_change:
            continue
        where = (cfg.dataset, cfg.data_root)
        if where not in current:
            current[where] = (fingerprint_fn or default_fingerprint_fn())(cfg)
        if recorded["digest"] != current[where]["digest"]:
            changed.setdefault(where, (recorded, current[where], run_dir))
    if changed:
        lines = [f"  {dataset}: done runs trained on {old['root']} (data {old['digest']}), the data root now gives "
                 f"{new['root']} (data {new['digest']}); e.g. {run_dir}"
                 for (dataset, _), (old, new, run_dir) in changed.items()]
        raise DataChangedError("done runs were trained on other data than now:\n" + "\n".join(lines)
                               + "\nuse another --root, or --accept-data-change to count them done anyway")


def default_fingerprint_fn() -> FingerprintFn:
    """The real data fingerprint, imported only when a done run's record has one to compare."""
    from deepnet.run_inputs import data_fingerprint

    return data_fingerprint


def _finish_books(root: str | Path, run_dir: Path, record: dict) -> None:
    """The last two steps of finishing a run, whose ``result.json`` is written: append its record to
    ``results.jsonl``, then create ``done`` (a stale ``error.txt`` goes)."""
    append_jsonl(Path(root) / SWEEP_RESULTS, record)
    write_text(run_dir / DONE_MARKER, "")
    (run_dir / ERROR).unlink(missing_ok=True)


def set_threads(threads: int) -> None:
    """Use ``threads`` torch threads and numpy/scipy BLAS threads (e.g. the linear probe's lbfgs)
    in this process: on a loaded machine fewer threads than cores can be much faster."""
    import torch
    from threadpoolctl import threadpool_limits

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    threadpool_limits(threads)


def run_many(
    cfgs: list[dict], root: str, train_fn: TrainFn | None = None, progress: bool = False,
    threads: int | None = None, owner_lock: str | None = None,
) -> list[RunOutcome]:
    """Run configs (as dicts, so the call pickles plainly for submitit) one after another,
    with ``threads`` torch and BLAS threads when given (CPU workers sharing a machine).

    With ``owner_lock`` (the lock file the launching sweep owns, see :func:`common.io.owned`) this
    process kills itself (SIGKILL) within ``WATCH_S`` seconds once that lock is free, i.e. once the
    sweep process has died, even by SIGKILL: a worker never trains on as an orphan. The worker
    process exits quickly afterwards (:func:`common.shutdown.freeze_at_exit`).
    """
    freeze_at_exit()
    if owner_lock is not None:
        threading.Thread(target=_die_with_owner, args=(owner_lock,), daemon=True, name="owner-watch").start()
    if threads is not None:
        set_threads(threads)
    return [run_one(RunConfig.from_dict(c), root, train_fn, progress) for c in cfgs]


def _die_with_owner(owner_lock: str) -> None:
    while is_held(owner_lock):
        time.sleep(WATCH_S)
    os.kill(os.getpid(), signal.SIGKILL)


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
        if (run_dir / DONE_MARKER).exists():
            continue
        adopted += 1
        if dry_run:
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG, by_key[key].to_dict())
        write_json(run_dir / RESULT, record)
        _finish_books(root, run_dir, record)
    return adopted, unmatched

"""Where a sweep's runs execute: ``local`` (this machine) or ``slurm`` (a cluster, via submitit).

- ``local`` on a CPU or a single GPU runs the pending runs one after another in this process
  (a progress bar over runs; the trainer shows its own bar per run). With several visible GPUs it
  starts one ``submitit.LocalExecutor`` job per GPU, pinned by ``CUDA_VISIBLE_DEVICES``, each job
  working through a round-robin share of the runs; the bar follows the ``done`` markers. Without a
  GPU, ``cpu_workers=N`` does the same with N CPU jobs of ``cores // N`` torch threads each (for
  the small offline models on 2 cores a 7-9% gain over one process once the workers' start-up is
  amortized: ``benchmarks/bench_cpu_workers.py``).
- ``slurm`` submits one Slurm array task per run with ``submitit.AutoExecutor`` (parameters from
  the spec's ``[slurm]`` table and ``--slurm KEY=VALUE``; defaults in :data:`SLURM_DEFAULTS`).
  Each task is ``Checkpointable``: on timeout or preemption submitit requeues it and the trainer
  resumes from the run's checkpoint. ``cluster="local"`` / ``"debug"`` runs the same code path
  without Slurm (what the tests use).

A launcher never schedules a run twice within one launch, and a run trains only in the process
that owns its lock (see :mod:`deepnet.sweep.runner`), so two launches on the same root at the same
time share the runs. Local workers watch a lock the launching process owns and kill themselves
once it is free, so they die with the sweep even when it is killed by SIGKILL.

:data:`LAUNCHERS` is the one list of launchers: each :class:`LauncherEntry` holds the launch
function, its line of ``--launcher`` help and how it takes its options from the command line.
"""
from __future__ import annotations

import argparse
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import submitit
from tqdm.auto import tqdm

from common.io import owned
from common.registry import Registry
from common.shutdown import freeze_at_exit
from deepnet.config import RunConfig
from deepnet.sweep.runner import FingerprintFn, TrainFn, RunOutcome, check_done_runs, run_many, run_one, run_state
from deepnet.sweep.states import BUSY, DONE, FAILED, REPORTED_STATUSES, SUBMITTED

Launcher = Callable[..., list[RunOutcome]]


@dataclass(frozen=True)
class LauncherEntry:
    """A registered launcher and what the command line needs to drive it.

    Attributes
    ----------
    launch : Launcher
        ``launch(cfgs, root, train_fn=..., progress=..., **options) -> list[RunOutcome]``.
    help : str
        Its line in the help of ``--launcher``.
    options : callable
        ``options(args, slurm) -> dict``: the keyword options ``launch`` takes, from the parsed
        ``sweep`` command line ``args`` and ``slurm``, the specs' ``[slurm]`` tables updated by
        ``--slurm KEY=VALUE``.
    """

    launch: Launcher
    help: str
    options: Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]]


LAUNCHERS: Registry[LauncherEntry] = Registry("launcher")
DEFAULT_LAUNCHER = "local"

SLURM_DEFAULTS: dict[str, Any] = {
    "timeout_min": 24 * 60,
    "gpus_per_node": 1,
    "cpus_per_task": 8,
    "slurm_array_parallelism": 64,
}
POLL_S = 5.0


@dataclass
class SweepReport:
    """One launch of a sweep: how many runs the spec has, which were already done, what ran now."""

    total: int
    done_before: int
    outcomes: list[RunOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    def summary(self) -> str:
        parts = [f"{self.total} runs: {self.done_before} done before this launch"]
        for status in REPORTED_STATUSES:
            if self.count(status):
                parts.append(f"{self.count(status)} {status}")
        lines = [", ".join(parts)]
        lines += [f"  failed: {o.name}: {o.error} (traceback in {o.run_dir}/error.txt)" for o in self.failed]
        lines += [f"  busy: {o.name}: {o.error}, skipped here" for o in self.outcomes if o.status == BUSY]
        return "\n".join(lines)


def plan(cfgs: list[RunConfig], root: str | Path) -> list[tuple[RunConfig, str]]:
    """Each distinct config with its state under ``root`` (see :func:`~deepnet.sweep.runner.run_state`)."""
    unique = {cfg.key(): cfg for cfg in cfgs}
    return [(cfg, run_state(root, cfg)) for cfg in unique.values()]


def run_sweep(
    cfgs: list[RunConfig],
    root: str | Path,
    launcher: str = DEFAULT_LAUNCHER,
    train_fn: TrainFn | None = None,
    max_runs: int | None = None,
    progress: bool = True,
    accept_data_change: bool = False,
    fingerprint_fn: FingerprintFn | None = None,
    **options: Any,
) -> SweepReport:
    """Launch every config of the sweep that is not done yet (at most ``max_runs`` of them).

    Each config trains in its own run directory under ``root`` (named by its key), so a sweep
    launched again resumes: interrupted runs continue from their checkpoints and runs done before
    are skipped, after :func:`~deepnet.sweep.runner.check_done_runs` has compared their data.

    Parameters
    ----------
    cfgs : list of RunConfig
        The sweep's runs (e.g. :meth:`deepnet.sweep.spec.SweepSpec.expand`); duplicates run once.
    root : str or Path
        The sweep directory (created).
    launcher : str, default "local"
        A name in :data:`LAUNCHERS` (``local``: sequential, one job per GPU or ``cpu_workers``
        CPU jobs; ``slurm``: submitit jobs).
    train_fn : callable, optional
        ``train_fn(cfg, run_dir, progress=...)`` writing ``run_dir/result.json``; None is
        :func:`deepnet.train.train`.
    max_runs : int, optional
        Launch at most this many of the pending runs (>= 1); None launches all.
    progress : bool, default True
        Progress bars.
    accept_data_change : bool, default False
        Go on when a done run's recorded data fingerprint differs from the data found now.
    fingerprint_fn : callable, optional
        ``fingerprint_fn(cfg)``, the data a config trains on; None reads it from the dataset.
    **options
        The launcher's options (``local``: ``gpus``, ``cpu_workers``, ``threads``; ``slurm``:
        ``wait``, ``cluster`` and submitit parameters).

    Returns
    -------
    SweepReport
        The counts before the launch and one outcome per launched run (``ok``, ``diverged``,
        ``failed`` with the error kept in its ``error.txt``, ``busy``, ...).

    Raises
    ------
    ValueError
        ``max_runs`` below 1, or an unknown ``launcher``.
    DataChangedError
        A done run's data differs from the data found now, unless ``accept_data_change``.

    Examples
    --------
    Two learning rates with a stand-in trainer that writes the record :func:`deepnet.train.train`
    would; launched again, the sweep finds both done:

    >>> import tempfile
    >>> from common.io import write_json
    >>> from deepnet.config import RunConfig
    >>> from deepnet.sweep.launchers import run_sweep
    >>> def toy_train(cfg, run_dir, progress=True):
    ...     write_json(Path(run_dir) / "result.json", {"config": cfg.to_dict(), "status": "ok",
    ...                                               "metrics": {"id_val": 1 - cfg.lr}})
    >>> cfgs = [RunConfig(model="small_resnet", dataset="digits", method="sgd", lr=lr, seed=0) for lr in (1e-3, 1e-2)]
    >>> with tempfile.TemporaryDirectory() as root:
    ...     print(run_sweep(cfgs, root, train_fn=toy_train, progress=False).summary())
    ...     print(run_sweep(cfgs, root, train_fn=toy_train, progress=False, fingerprint_fn=lambda cfg: {}).summary())
    2 runs: 0 done before this launch, 2 ok
    2 runs: 2 done before this launch
    """
    if max_runs is not None and max_runs < 1:
        raise ValueError(f"max_runs must be >= 1, got {max_runs}")
    launch = LAUNCHERS.get(launcher).launch
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    check_done_runs(cfgs, root, fingerprint_fn, accept_data_change)
    states = plan(cfgs, root)
    pending = [cfg for cfg, state in states if state != DONE]
    if max_runs is not None:
        pending = pending[:max_runs]
    report = SweepReport(total=len(states), done_before=len(states) - sum(s != DONE for _, s in states))
    if pending:
        report.outcomes = launch(pending, root, train_fn=train_fn, progress=progress, **options)
    return report


def launch_local(
    cfgs: list[RunConfig],
    root: Path,
    train_fn: TrainFn | None = None,
    progress: bool = True,
    gpus: list[int] | None = None,
    cpu_workers: int = 1,
    threads: int | None = None,
) -> list[RunOutcome]:
    """Sequential on CPU / one GPU; otherwise one ``LocalExecutor`` job per GPU in ``gpus`` or,
    with no GPU, ``cpu_workers`` CPU jobs, each working through a round-robin share of ``cfgs``.
    ``threads`` sets each CPU job's torch and BLAS threads (default: cores // ``cpu_workers``).

    ``gpus`` defaults to the visible CUDA devices (``CUDA_VISIBLE_DEVICES`` ids when set).
    """
    if cpu_workers < 1:
        raise ValueError(f"cpu_workers must be >= 1, got {cpu_workers}")
    gpus = visible_gpus() if gpus is None else list(gpus)
    if len(gpus) > 1:
        workers = [_Worker(f"gpu{gpu}", visible_gpus=(gpu,)) for gpu in gpus]
    elif not gpus and cpu_workers > 1:
        threads = threads or max(1, (os.cpu_count() or 1) // cpu_workers)
        workers = [_Worker(f"cpu{i}", visible_gpus=(), threads=threads) for i in range(cpu_workers)]
    else:
        workers = []
    if len(workers) <= 1 or len(cfgs) == 1:
        outcomes = []
        bar = tqdm(cfgs, desc="sweep", unit="run", disable=not progress)
        for cfg in bar:
            bar.set_postfix_str(cfg.run_name(), refresh=True)
            outcomes.append(run_one(cfg, root, train_fn, progress=progress))
        return outcomes
    owner_lock = root / "submitit" / f"owner-{socket.gethostname()}-{os.getpid()}.lock"
    with owned(owner_lock):  # the workers die once this lock is free (this process gone)
        try:
            jobs, shares = [], []
            for index, worker in enumerate(workers):
                share = cfgs[index :: len(workers)]
                if not share:
                    continue
                executor = submitit.LocalExecutor(folder=root / "submitit" / worker.name)
                executor.update_parameters(gpus_per_node=len(worker.visible_gpus), visible_gpus=worker.visible_gpus,
                                           timeout_min=SLURM_DEFAULTS["timeout_min"])
                jobs.append(executor.submit(run_many, [c.to_dict() for c in share], str(root), train_fn,
                                            threads=worker.threads, owner_lock=str(owner_lock)))
                shares.append(share)
            _follow(jobs, cfgs, root, progress)
        except KeyboardInterrupt:  # Ctrl-C (or SIGTERM, see the CLI): stop the workers too, not only this process
            for job in jobs:
                job.cancel(check=False)
            raise
        finally:
            owner_lock.unlink()  # named after this process: no other process locks it
    outcomes = []
    for job, share in zip(jobs, shares):
        try:
            outcomes += job.result()
        except Exception as err:  # the worker process died (killed, out of memory): its share's unfinished runs
            outcomes += [
                RunOutcome(c.run_name(), c.key(), FAILED, str(root / c.key()), f"worker died: {err}")
                for c in share if run_state(root, c) != DONE
            ]
    return outcomes


@dataclass(frozen=True)
class _Worker:
    """One local worker process: its name (submitit log folder), GPUs, and torch threads (None: default)."""

    name: str
    visible_gpus: tuple[int, ...]
    threads: int | None = None


def visible_gpus() -> list[int]:
    """Physical ids of the CUDA devices this process may use."""
    import torch

    count = torch.cuda.device_count()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env:
        ids = [int(x) for x in env.split(",") if x.strip()]
        return ids[:count]
    return list(range(count))


def _follow(jobs: list[submitit.Job], cfgs: list[RunConfig], root: Path, progress: bool) -> None:
    """Wait for local jobs, advancing a bar as runs get their ``done`` marker."""
    with tqdm(total=len(cfgs), desc="sweep", unit="run", disable=not progress) as bar:
        while True:
            finished = all(job.done() for job in jobs)
            bar.update(sum(run_state(root, c) == DONE for c in cfgs) - bar.n)
            if finished:
                return
            time.sleep(POLL_S)


class RunJob(submitit.helpers.Checkpointable):
    """One sweep run as a submitit job; requeued (and resumed from its checkpoint) on timeout.

    A job with several tasks (``tasks_per_node`` / ``nodes`` > 1, one per GPU) is one
    torch-distributed run: each task gets the torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR/PORT) the trainer reads, and task 0 keeps the books.
    """

    def __init__(self, root: str, train_fn: TrainFn | None = None) -> None:
        self.root = root
        self.train_fn = train_fn

    def __call__(self, cfg: dict) -> RunOutcome:
        freeze_at_exit()  # the task's process ends with this run
        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return run_one(RunConfig.from_dict(cfg), self.root, self.train_fn, progress=False,
                       main_process=env.global_rank == 0)


def launch_slurm(
    cfgs: list[RunConfig],
    root: Path,
    train_fn: TrainFn | None = None,
    progress: bool = True,
    wait: bool = True,
    cluster: str | None = None,
    **params: Any,
) -> list[RunOutcome]:
    """Submit one array task per run; with ``wait`` follow them to the end, else return at once.

    ``params`` are submitit ``AutoExecutor`` parameters (``timeout_min``, ``gpus_per_node``,
    ``slurm_partition``, ``slurm_array_parallelism``, ...) over :data:`SLURM_DEFAULTS`.
    ``cluster`` picks the submitit backend: None = Slurm when available, ``"local"``, ``"debug"``.
    """
    executor = submitit.AutoExecutor(folder=root / "submitit", cluster=cluster)
    executor.update_parameters(**{**SLURM_DEFAULTS, "name": f"sweep-{root.name}", **params})
    jobs = executor.map_array(RunJob(str(root), train_fn), [c.to_dict() for c in cfgs])
    print(f"submitted {len(jobs)} jobs ({jobs[0].job_id.split('_')[0]}...); logs in {root / 'submitit'}")
    if not wait:
        return [
            RunOutcome(c.run_name(), c.key(), SUBMITTED, str(root / c.key())) for c in cfgs
        ]
    by_job = {id(job): cfg for job, cfg in zip(jobs, cfgs)}
    outcomes = []
    for job in tqdm(submitit.helpers.as_completed(jobs, poll_frequency=POLL_S), total=len(jobs), desc="sweep", unit="run", disable=not progress):
        try:
            outcomes.append(job.result())
        except Exception as err:  # the job itself died (killed, out of memory, node failure)
            cfg = by_job[id(job)]
            outcomes.append(RunOutcome(cfg.run_name(), cfg.key(), FAILED, str(root / cfg.key()), str(err)))
    return outcomes


def _local_options(args: argparse.Namespace, slurm: dict[str, Any]) -> dict[str, Any]:
    """``launch_local``'s options: ``--cpu-workers``, ``--threads`` and ``--gpus`` (when given)."""
    options: dict[str, Any] = {"cpu_workers": args.cpu_workers, "threads": args.threads}
    if args.gpus:
        options["gpus"] = args.gpus
    return options


def _slurm_options(args: argparse.Namespace, slurm: dict[str, Any]) -> dict[str, Any]:
    """``launch_slurm``'s options: the submitit parameters in ``slurm``, ``--no-wait`` and ``--cluster``."""
    return {**slurm, "wait": not args.no_wait, "cluster": args.cluster}


LAUNCHERS.add("local", LauncherEntry(launch_local, "sequential on CPU, one job per GPU otherwise", _local_options))
LAUNCHERS.add("slurm", LauncherEntry(launch_slurm, "submitit array", _slurm_options))

"""The names of a run's states: what its directory says, and what one launch did with it.

Each is the plain string that run directories, result records (``"status"``) and the launch
summary carry; code compares against these constants, never against the strings.

Run-directory states (:func:`deepnet.sweep.runner.run_state`), in the order a dry run counts them:
``done`` (finished, the ``done`` marker exists), ``interrupted`` (a checkpoint or result exists,
not done), ``failed`` (the last try raised: ``error.txt``), ``new`` (nothing yet).

Outcome statuses (:class:`deepnet.sweep.runner.RunOutcome`): ``ok`` and ``diverged`` (trained;
also the trainer's record ``status``), ``failed`` (the trainer or its worker raised),
``submitted`` (handed to Slurm without waiting), ``busy`` (another live process owns the run),
``skipped`` (done before) and ``secondary`` (a rank > 0 process of a distributed run).
"""
from __future__ import annotations

DONE = "done"
INTERRUPTED = "interrupted"
FAILED = "failed"
NEW = "new"
#: run-directory states, in the order a dry run counts them.
RUN_STATES = (DONE, INTERRUPTED, FAILED, NEW)

OK = "ok"
DIVERGED = "diverged"
SUBMITTED = "submitted"
BUSY = "busy"
SKIPPED = "skipped"
SECONDARY = "secondary"
#: outcome statuses a launch summary counts, in its order (``failed`` is both a state and a status).
REPORTED_STATUSES = (OK, DIVERGED, FAILED, SUBMITTED, BUSY)

"""The file names of a run directory, defined once for the trainer and every reader of its runs.

``deepnet.train`` writes `RESULT` (the record), `CHECKPOINT` (with `PREVIOUS_SUFFIX` for the one
before the last, `CORRUPT_SUFFIX` for an unreadable one moved aside) and, through
``deepnet.metrics_log``, `METRICS` (and TensorBoard events under `TENSORBOARD_DIR`). A sweep
(``deepnet.sweep.runner``) writes the run's `CONFIG` before training it, holds `LOCK` while it
trains, marks a finished run with `DONE_MARKER` or a failed one with `ERROR`, and appends every record to
`SWEEP_RESULTS` at the sweep's root.
"""
from __future__ import annotations

CONFIG = "config.json"
RESULT = "result.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
PREVIOUS_SUFFIX = ".prev"
CORRUPT_SUFFIX = ".corrupt"
TENSORBOARD_DIR = "tensorboard"
DONE_MARKER = "done"
ERROR = "error.txt"
LOCK = "lock"
SWEEP_RESULTS = "results.jsonl"

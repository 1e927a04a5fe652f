"""The file names of a run directory, defined once for the trainer and every reader of its runs.

``deepnet.train`` writes `RESULT` (the record), `CHECKPOINT` (with `PREVIOUS_SUFFIX` for the one
before the last, `CORRUPT_SUFFIX` for an unreadable one moved aside) and, through
``deepnet.metrics_log``, `METRICS` (and TensorBoard events under `TENSORBOARD_DIR`); a sweep writes the run's `CONFIG` before training it.
"""
from __future__ import annotations

CONFIG = "config.json"
RESULT = "result.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
PREVIOUS_SUFFIX = ".prev"
CORRUPT_SUFFIX = ".corrupt"
TENSORBOARD_DIR = "tensorboard"

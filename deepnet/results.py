"""Result files that survive crashes and concurrent writers, plus the provenance stamped on every record.

Every write goes to a temporary file in the same directory and is moved into place with
``os.replace`` (atomic on POSIX), so a reader never sees half a record. JSON-lines appends also
hold an exclusive ``fcntl`` lock on a sidecar ``.lock`` file, so sweep workers appending to one
results file never lose each other's lines.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that need a file name (``torch.save`` of a checkpoint) rather than bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (all or nothing)."""
    _write_bytes_atomic(Path(path), (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON record as a line of ``path``, atomically and safely under concurrent writers."""
    path = Path(path)
    line = (json.dumps(record, sort_keys=False) + "\n").encode()
    with _locked(path):
        existing = path.read_bytes() if path.exists() else b""
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        _write_bytes_atomic(path, existing + line)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSON-lines file; a malformed line raises an error naming file and line."""
    records = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
    return records


def git_commit(repo_dir: str | Path | None = None) -> str | None:
    """The git commit of the code (with a ``-dirty`` suffix for local changes), or None outside git."""
    cwd = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def environment(device: str | torch.device | None = None) -> dict[str, Any]:
    """Versions and hardware a result was produced with."""
    import timm

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "device": str(device) if device is not None else None,
    }
    if device is not None and torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
        env["gpu_count"] = torch.cuda.device_count()
    return env

"""The one set of result-file writers: atomic, umask-respecting, safe under concurrent writers.

Every write goes to a temporary file in the same directory and is moved into place with
``os.replace`` (atomic on POSIX), so a reader never sees half a file and a crash leaves the old
file intact. Temporary files are named ``.<name>.<random>.tmp``; a writer killed by SIGKILL can
leave one behind, which :func:`remove_stale_temps` clears. Files get the permissions of a plain
``open`` (0666 minus the umask), not ``mkstemp``'s 0600. JSON-lines appends hold an exclusive
``fcntl`` lock on a sidecar ``.lock`` file, so workers appending to one file never lose lines.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that need a file name (``torch.save``, ``savefig``) rather than bytes.

    Parameters
    ----------
    path : str or Path
        The final file. Its folder is created if missing.

    Yields
    ------
    Path
        A temporary file in the same folder, already created (empty) with mode ``0666 & ~umask``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (all or nothing), fsynced before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically; numpy scalars are written as floats."""
    write_text(path, json.dumps(obj, indent=indent, default=float) + "\n")


def read_json(path: str | Path) -> Any:
    """Parse the JSON file ``path``; a malformed file raises ``ValueError`` naming it."""
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on the sidecar ``<path>.lock`` for the duration."""
    path = Path(path)
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
    line = (json.dumps(record, sort_keys=False, default=float) + "\n").encode()
    with locked(path):
        existing = path.read_bytes() if path.exists() else b""
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        write_bytes(path, existing + line)


def read_jsonl(path: str | Path, strict: bool = True) -> list[dict[str, Any]]:
    """All records of a JSON-lines file.

    Parameters
    ----------
    path : str or Path
        The file.
    strict : bool, default True
        If True a malformed line raises ``ValueError`` naming ``file:line``. If False it is
        skipped with one ``UserWarning`` that names each bad ``file:line`` and their count.

    Returns
    -------
    list of dict
        The records, in file order (blank lines ignored).
    """
    records, bad = [], []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                if strict:
                    raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
                bad.append(f"{path}:{number}")
    if bad:
        warnings.warn(f"skipped {len(bad)} malformed line(s): {', '.join(bad)}", UserWarning, stacklevel=2)
    return records


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the writers' leftover ``.<name>.*.tmp`` files in ``folder`` (not recursive).

    Call it only where no other live writer can be mid-write (e.g. while holding a run's lock).
    Returns the removed paths.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.glob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed

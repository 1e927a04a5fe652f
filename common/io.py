"""The one set of result-file writers: atomic, umask-respecting, safe under concurrent writers.

Every write goes to a temporary file in the same directory and is moved into place with
``os.replace`` (atomic on POSIX), so a reader never sees half a file and a crash leaves the old
file intact. Temporary files are named ``.<name>.<random>.tmp``; a writer killed by SIGKILL can
leave one behind, which :func:`remove_stale_temps` clears. Files get the permissions of a plain
``open`` (0666 minus the umask), not ``mkstemp``'s 0600. JSON-lines appends hold an exclusive
``fcntl`` lock on a sidecar ``.lock`` file, so workers appending to one file never lose lines.
:func:`owned` is the non-blocking kind: one process owns a lock file (its host and pid recorded
in it) until it is done or dies, and any other process is told who owns it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
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


class LockHeld(RuntimeError):
    """Another live process owns the lock; ``holder`` is what it recorded (``"host pid"``)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder or 'another process'}")
        self.path, self.holder = path, holder


@contextlib.contextmanager
def owned(path: str | Path) -> Iterator[str | None]:
    """Own the lock file ``path`` (an exclusive ``fcntl.flock``) for the duration, without waiting.

    The owner's ``"host pid"`` is written into the file while it is held and erased on release.
    The operating system releases the lock when its process dies (even by SIGKILL), so a lock
    left by a dead process is simply taken over.

    Parameters
    ----------
    path : str or Path
        The lock file (created if missing, never deleted: deleting it would let two processes
        lock two different files of the same name).

    Yields
    ------
    str or None
        The holder a dead process left recorded (a lock taken over), else None.

    Raises
    ------
    LockHeld
        If another live process owns the lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(path, f.read().strip()) from None
        stale = f.read().strip() or None
        _record(f, f"{socket.gethostname()} {os.getpid()}\n")
        try:
            yield stale
        finally:
            _record(f, "")
            fcntl.flock(f, fcntl.LOCK_UN)


def _record(f: Any, text: str) -> None:
    f.seek(0)
    f.truncate()
    f.write(text)
    f.flush()


def is_held(path: str | Path) -> bool:
    """Whether a live process owns the lock file ``path`` (see :func:`owned`).

    The probe takes a shared lock for an instant, so it may make a concurrent :func:`owned` of the
    same file fail: use it to watch a lock that is already owned, not one being contended for.
    """
    try:
        f = open(path)
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def move_aside(path: str | Path, suffix: str) -> Path:
    """Rename ``path`` to ``<path><suffix>`` (replacing an earlier one) and return the new path."""
    path = Path(path)
    target = path.with_name(path.name + suffix)
    os.replace(path, target)
    return target


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON record as a line of ``path``, atomically and safely under concurrent writers.

    Under the lock no other append is mid-write, so temporary files of ``path`` left by a killed
    appender are removed first.
    """
    path = Path(path)
    line = (json.dumps(record, sort_keys=False, default=float) + "\n").encode()
    with locked(path):
        remove_stale_temps(path.parent, path.name)
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


def remove_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the writers' leftover ``.<name>.*.tmp`` files in ``folder`` (not recursive).

    Call it only where no other live writer can be mid-write (e.g. while holding a run's lock).
    With ``name``, only the temporary files of that file. Returns the removed paths.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.glob(f".{name}.*{TEMP_SUFFIX}" if name else f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed

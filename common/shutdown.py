"""A quick interpreter exit for the processes the project starts itself (commands, sweep workers).

A process that has imported torch, torchvision and timm tracks about a million objects. At exit,
CPython's finalization collects them again and again while it clears the modules, which took
1.4-2.5 s here (four runs, after importing ``deepnet.train`` and timm); frozen first
(:func:`gc.freeze`), they are left to the operating system and the exit took 0.2-0.3 s.
Refcounted objects are still freed and every ``atexit`` handler and context manager still runs;
only ``__del__`` methods of objects in reference cycles may not run, which Python does not promise
at exit anyway. Result files never depend on that: they are written
atomically and closed (:mod:`common.io`).
"""
from __future__ import annotations

import atexit
import gc

_registered = False


def freeze_at_exit() -> None:
    """Freeze the garbage collector's objects when this interpreter exits, so the exit is quick.

    Call it in a process's entry point, never on import: a library must not change how its
    users' interpreters exit. Calling it more than once registers one handler.

    References
    ----------
    Python documentation, :func:`gc.freeze` and "Data model", ``object.__del__`` ("It is not
    guaranteed that __del__() methods are called for objects that still exist when the
    interpreter exits").

    Examples
    --------
    >>> from common.shutdown import freeze_at_exit
    >>> freeze_at_exit()  # e.g. first thing under ``if __name__ == "__main__":``
    """
    global _registered
    if not _registered:
        atexit.register(gc.freeze)  # atexit handlers run before the modules are cleared
        _registered = True

"""Progress bars of a run, on or off for all it does: epochs, steps, features, each evaluated
split and the linear probe's C sweep (``train --no-progress`` turns them off).

The trainer sets the switch for the run (:func:`progress_bars`); the code it calls makes its bars
with :func:`progress_bar`, so a method or the evaluation needs no flag of its own. Outside a run
the bars are off.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Iterable, Iterator

from tqdm.auto import tqdm

_SHOWN: ContextVar[bool] = ContextVar("deepnet_progress_bars", default=False)


@contextlib.contextmanager
def progress_bars(shown: bool) -> Iterator[None]:
    """Show the bars made by :func:`progress_bar` inside the block (``shown``) or not.

    Parameters
    ----------
    shown : bool
        Whether bars are drawn; the previous setting returns on exit.
    """
    token = _SHOWN.set(shown)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar that disappears when done, drawn only inside ``progress_bars(True)``.

    Parameters
    ----------
    iterable : iterable, optional
        What the bar iterates over (None: update it by hand, with ``total=``).
    **kwargs
        Passed to ``tqdm`` (``desc``, ``total``, ``leave`` ...).

    Returns
    -------
    tqdm
        The bar; when bars are off it draws nothing and iterates as ``iterable`` does.
    """
    return tqdm(iterable, **{"leave": False, **kwargs, "disable": not _SHOWN.get()})

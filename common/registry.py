"""A small name -> object registry, as timm and DomainBed use, shared by every package.

Each registry is the single source of its names: command-line choices, spec validation and
dispatch all read ``names()`` / ``get()`` from it, and registering a name twice is an error.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; duplicates are rejected and unknown names fail with the known ones.

    Parameters
    ----------
    kind : str
        What the registry holds ("model", "method", "claim"); used in error messages.
    fallback : callable, optional
        ``fallback(name)`` gives an object for a name that is not registered, or None; ``get``
        and ``in`` consult it (e.g. any timm model name for the model registry).
    fallback_note : str
        Appended to the unknown-name error to say what the fallback accepts.

    Examples
    --------
    >>> reg = Registry("solver")
    >>> @reg.register("euler")
    ... def euler(): return "step"
    >>> reg.get("euler")()
    'step'
    >>> reg.names()
    ['euler']
    >>> reg.get("rk4")
    Traceback (most recent call last):
    ...
    KeyError: "unknown solver 'rk4'; known: euler"
    """

    def __init__(self, kind: str, fallback: Callable[[str], T | None] | None = None,
                 fallback_note: str = "") -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._fallback = fallback
        self._fallback_note = fallback_note

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; returns the object unchanged."""
        def wrap(obj: T) -> T:
            self.add(name, obj)
            return obj

        return wrap

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``; raises ``KeyError`` if the name is taken."""
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """The object registered as ``name`` (else the fallback's); ``KeyError`` naming the known names."""
        if name in self._items:
            return self._items[name]
        found = self._fallback(name) if self._fallback is not None else None
        if found is None:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}{self._fallback_note}")
        return found

    def __getitem__(self, name: str) -> T:
        """``registry[name]`` is :meth:`get`."""
        return self.get(name)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs, sorted by name."""
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        if name in self._items:
            return True
        return isinstance(name, str) and self._fallback is not None and self._fallback(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

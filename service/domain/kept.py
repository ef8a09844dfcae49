"""Work kept between requests: what was made of objects that requests share (a plan's
tuples, a read the cache gave again), found again by those objects' identity."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class KeptByIdentity(Generic[V]):
    """At most `size` values, each found by the identity of the objects it was made of and
    an equal `also`; an entry holds its objects, so that their ids stay theirs while it is
    kept. Full, it forgets everything: a question asked again soon is kept again. Values
    are shared, never to be changed by those who get them."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._kept: dict[tuple, tuple[tuple, V]] = {}

    def get(self, objects: tuple, also: Hashable = None) -> V | None:
        kept = self._kept.get((*map(id, objects), also))
        if kept is None or any(a is not b for a, b in zip(kept[0], objects, strict=True)):
            return None
        return kept[1]

    def keep(self, objects: tuple, value: V, also: Hashable = None) -> V:
        if len(self._kept) >= self.size:
            self._kept.clear()
        self._kept[(*map(id, objects), also)] = (objects, value)
        return value

    def get_or_make(self, objects: tuple, make: Callable[[], V], also: Hashable = None) -> V:
        """The value kept for these objects (and `also`), else `make()`, kept."""
        found = self.get(objects, also)
        return self.keep(objects, make(), also) if found is None else found

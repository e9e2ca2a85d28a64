"""Progress of long set-up work (discretizing, checks, tubes, terminal sets, building agents), for whoever shows
it. The library only names its stages (`report`, `counted`); `dmpc sim` and `dmpc run` show them once set-up has
taken a while (cli.SetUpProgress). Nothing is shown by default. A leaf module: every layer may import it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

Reporter = Callable[[str, int, int], None]   # (stage, done, total); total 0: not counted
_reporters: list[Reporter] = []
Item = TypeVar("Item")


def report(stage: str, done: int = 0, total: int = 0) -> None:
    for reporter in _reporters:
        reporter(stage, done, total)


def counted(stage: str, items: Iterable[Item], total: int) -> Iterator[Item]:
    """The items, reporting `stage` done/total before each and at the end."""
    done = 0
    for item in items:
        report(stage, done, total)
        yield item
        done += 1
    report(stage, done, total)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    _reporters.append(reporter)
    try:
        yield
    finally:
        _reporters.remove(reporter)

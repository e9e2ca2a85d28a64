"""Progress of long set-up work (discretizing, checks, tubes, terminal sets, building agents), for whoever shows
it. The library only names its stages (`report`, `counted`); `dmpc sim` and `dmpc run` show them once set-up has
taken a while (cli.SetUpProgress). Nothing is shown by default. A leaf module: every layer may import it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

Reporter = Callable[[str, int, int], None]   # (stage, done, total); total 0: not counted; done SET_UP_OVER: see below
SET_UP_OVER = -1   # `done` of the report that set-up is over (the run steps now): no stage is under way any more
_reporters: list[Reporter] = []
Item = TypeVar("Item")


def report(stage: str, done: int = 0, total: int = 0) -> None:
    """Tell every reporter that `stage` is under way (done of total; total 0: not counted), named with the phase
    it belongs to (phase)."""
    for reporter in _reporters:
        reporter(phase_of(stage), done, total)


def set_up_over() -> None:
    """Tell the reporters that set-up is over (the closed loop is stepping), so none shows a finished stage later."""
    report("", SET_UP_OVER)


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


_phases: list[str] = []


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Name the work under way (e.g. "centralized reference run"): stages reported inside are shown as
    "name: stage", so a set-up line says whose set-up it is."""
    _phases.append(name)
    try:
        yield
    finally:
        _phases.pop()


def current_phase() -> str:
    """The innermost phase's name ("" outside any)."""
    return _phases[-1] if _phases else ""


def phase_of(stage: str) -> str:
    """`stage` with the innermost phase's name first (as reporters get it)."""
    return f"{_phases[-1]}: {stage}" if _phases else stage


class StepLines:
    """Progress of a closed loop as plain lines, for output that is not a terminal (a file, a pipe): once the run
    has taken `quiet` seconds, one line every `fraction` of the steps or every `period` seconds, whichever comes
    first, and one at the end, e.g. "jacobi run: step 40/200 (20 %), 12 s elapsed, about 48 s left" (a quick run
    prints nothing). `say` prints a line, `clock` gives seconds."""

    def __init__(self, label: str, say: Callable[[str], None], clock: Callable[[], float], period: float = 10.0,
                 fraction: float = 0.1, quiet: float = 2.0) -> None:
        self.label, self.say, self.clock = label, say, clock
        self.period, self.fraction, self.quiet = period, fraction, quiet
        self.started = clock()
        self.last_time, self.last_step, self.shown = self.started, 0, False

    def __call__(self, step: int, total: int) -> None:
        now = self.clock()
        elapsed = now - self.started
        boundary = total > 0 and step - self.last_step >= max(1, round(self.fraction * total))
        due = (step >= total and self.shown) or now - self.last_time >= self.period or \
            (boundary and elapsed >= self.quiet)
        if not due or step == self.last_step:
            return
        self.last_time, self.last_step, self.shown = now, step, True
        left = f", about {elapsed * (total - step) / step:.0f} s left" if 0 < step < total else ""
        percent = f" ({100 * step / total:.0f} %)" if total else ""
        self.say(f"{self.label}: step {step}/{total}{percent}, {elapsed:.0f} s elapsed{left}")


def piped_step_lines(label: str) -> Callable[[int, int], None]:
    """StepLines on stdout (flushed) when stdout is not a terminal, else a no-op (a terminal shows the nodes' logs)."""
    import sys
    import time

    if sys.stdout.isatty():
        return lambda step, total: None
    return StepLines(label, lambda line: print(line, flush=True), time.monotonic)

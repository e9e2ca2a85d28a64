"""Warnings of one kind at most once per period, with the number suppressed since: an agent's refused plans, the
plant's refused inputs. Throttled by hand: rclpy's throttle_duration_sec inspects the caller's frame on every call
(2 ms each), which a flood of bad plans or forged inputs turned into a stall (bench/ros_flood.py)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable


class Throttle:
    """`warn(key, text)` logs through `log` at most once per `period` [s] per key."""

    def __init__(self, log: Callable[[str], object], period: float = 1.0) -> None:
        self.log, self.period = log, period
        self.seen: dict[Hashable, tuple[float, int]] = {}   # key → (last logged, suppressed since)

    def warn(self, key: Hashable, text: str) -> None:
        now = time.monotonic()
        last, suppressed = self.seen.get(key, (-math.inf, 0))
        if now - last >= self.period:
            self.log(text + (f" (and {suppressed} more since the last warning)" if suppressed else ""))
            self.seen[key] = (now, 0)
        else:
            self.seen[key] = (last, suppressed + 1)

"""Progress display on stderr: ``[2/7 mlp_sgd] compiled: round 7/30  (41 s)``.

On a terminal one status line is rewritten in place; otherwise (a log file, CI) a line is
printed whenever the system or phase changes, and once per round.
"""
from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    def __init__(self, stream=None, enabled=True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.prefix = ""
        self._width = 0
        self._last = None
        self._last_draw = 0.0

    def workload(self, i, n, name):
        self.prefix = f"[{i}/{n} {name}]"
        self._last = None

    def __call__(self, system, phase, r=0, rounds=0):
        if not self.enabled:
            return
        step = f" {r}/{rounds}" if rounds else ""
        elapsed = time.perf_counter() - self.start
        if self.tty:
            now = time.perf_counter()
            if phase == "round" and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            msg = f"{self.prefix} {system}: {phase}{step}  ({elapsed:.0f} s)"
            self.stream.write("\r" + msg.ljust(self._width))
            self._width = len(msg)
            self.stream.flush()
        else:
            key = ("round", r) if phase == "round" else (system, phase, r)
            if key == self._last:
                return
            self._last = key
            what = f"round {r}/{rounds}" if phase == "round" else f"{system}: {phase}{step}"
            self.stream.write(f"{self.prefix} {what}  ({elapsed:.0f} s)\n")
            self.stream.flush()

    def message(self, text):
        if not self.enabled:
            return
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self):
        if self.enabled and self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

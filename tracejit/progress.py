"""A plain-text progress bar for training loops (used by the examples).

Layer: utility, outside the compilation pipeline. ``Progress(label, total)``; call
``update(done, loss)`` after each step and ``close(loss)`` at the end. On a terminal the bar
is redrawn in place at most ten times a second; elsewhere (logs, CI) only the final line is
printed. It writes to stderr, so results on stdout stay clean.
"""
from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, final line only elsewhere."""

    def __init__(self, label, total):
        self.label, self.total, self.drawn = label, total, 0.0
        self.live = sys.stderr.isatty()

    def update(self, done, loss):
        if self.live and (done == self.total or time.monotonic() - self.drawn > 0.1):
            self.draw(done, loss, end="")

    def close(self, loss):
        if self.live:
            print(file=sys.stderr)
        else:
            self.draw(self.total, loss, end="\n")

    def draw(self, done, loss, end):
        bar = "#" * (30 * done // max(self.total, 1))
        print(f"\r{self.label} [{bar:<30}] {done}/{self.total}  loss {loss:.4f}", end=end, file=sys.stderr,
              flush=True)
        self.drawn = time.monotonic()

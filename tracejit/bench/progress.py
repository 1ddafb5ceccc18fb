"""Progress display on stderr for the benchmark harness: ``[2/7 mlp_sgd] compiled: round 7/30``.

One ``tqdm`` bar (``tracejit.progress``) over the workloads, its status the system and phase
running; tqdm redraws it in place on a terminal and writes plain lines to a log. Messages
(``message``) go above the bar without breaking it.
"""
from __future__ import annotations

import sys

from ..progress import progress_bar

__all__ = ["Progress"]


class Progress:
    """``workload(i, n, name)`` when a workload starts, ``(system, phase, r, rounds)`` as it runs,
    ``message(text)`` for a line of its own, ``clear()`` at the end."""

    def __init__(self, stream=None, enabled=True):
        self.stream, self.enabled = stream, enabled
        self.bar = None
        self.prefix = ""
        self._last = None

    def workload(self, i, n, name):
        if self.bar is None:
            self.bar = progress_bar(n, enabled=self.enabled, stream=self.stream, unit="workload",
                                    bar_format="{desc} {n_fmt}/{total_fmt} [{elapsed}]{postfix}")
        self.bar.n = i - 1
        self.prefix = f"[{i}/{n} {name}]"
        self.bar.set_description_str(self.prefix, refresh=False)
        self._last = None

    def __call__(self, system, phase, r=0, rounds=0):
        if not self.enabled or self.bar is None:
            return
        status = f"round {r}/{rounds}" if phase == "round" else f"{system}: {phase}" + (f" {r}/{rounds}" if rounds else "")
        if status == self._last:  # one round of all systems is one step
            return
        self._last = status
        self.bar.set_postfix_str(status)

    def message(self, text):
        if not self.enabled:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        if self.bar is not None:
            self.bar.write(text, file=stream)  # clears the bar, writes the line, redraws the bar
        else:
            print(text, file=stream, flush=True)

    def clear(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

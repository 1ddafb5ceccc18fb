"""Progress bars on stderr, through ``tqdm`` (the one wrapper the package uses).

Layer: utility, outside the compilation pipeline. Used by the examples' training loops, the
dataset downloads and the benchmark harness. ``progress_bar(total, label)`` returns a
``tqdm`` bar writing to stderr (so results on stdout stay clean), redrawn at most ten times a
second; ``enabled=False`` gives a disabled bar whose methods do nothing. tqdm handles
terminals, notebooks and pipes (a log gets plain lines, not an animation).
"""
from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(total=None, label: str = "", *, enabled: bool = True, stream=None, **options) -> tqdm:
    """A ``tqdm`` bar on ``stream`` (default stderr) counting to ``total`` (None: no known end).

    ``options`` go to ``tqdm`` (``unit="B", unit_scale=True`` for bytes ...). Call ``update(n)``
    as work is done, ``set_postfix_str(text)`` for a status (a loss, a phase), ``write(text)``
    for a message line that does not break the bar, and ``close()`` at the end."""
    options.setdefault("mininterval", 0.1)
    options.setdefault("dynamic_ncols", True)
    return tqdm(total=total, desc=label or None, file=stream if stream is not None else sys.stderr,
                disable=not enabled, leave=True, **options)

"""Diagnostics switch: ``TRACEJIT_LOG=retrace,graph,source,compile,cache`` (or ``all``).

Layer: utility used by the runtime and the backend. Each topic prints its events to stderr as
they happen, prefixed with ``[tracejit:topic]``. ``tj.set_log("retrace,compile")`` changes the
topics from Python; ``tj.set_log("")`` turns logging off.
"""
from __future__ import annotations

import os
import sys

__all__ = ["TOPICS", "set_log", "enabled", "log"]

TOPICS = ("retrace", "graph", "source", "compile", "cache")
_topics: frozenset = frozenset()


def _parse(spec: str, origin: str) -> frozenset:
    names = {s.strip().lower() for s in spec.split(",") if s.strip()}
    if "all" in names:
        return frozenset(TOPICS)
    unknown = names - set(TOPICS)
    if unknown:
        raise ValueError(f"{origin}: unknown log topic(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(TOPICS)} or 'all'")
    return frozenset(names)


def set_log(spec: str) -> None:
    """Enable the comma-separated ``spec`` topics (replacing the current set)."""
    global _topics
    _topics = _parse(spec or "", "tj.set_log")


def enabled(topic: str) -> bool:
    return topic in _topics


def log(topic: str, message: str) -> None:
    if topic in _topics:
        print(f"[tracejit:{topic}] {message}", file=sys.stderr, flush=True)


_topics = _parse(os.environ.get("TRACEJIT_LOG", ""), "the environment variable TRACEJIT_LOG")

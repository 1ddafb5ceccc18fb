"""The helper process of background compiles: ``python -m tracejit.backend.compile_helper``.

Layer: backend. Reads compile jobs (``compiler._job``: the program's source, cache key, flags
and argument types), one JSON object per line on standard input, and compiles each with
``compiler.compile_into_disk_cache``, so that its machine code is in the disk cache when the
process that asked for it loads it. It answers each job with one line on standard output:
``ok``, or ``error`` and the error's first line, in which case the asking process compiles the
program itself (and raises the error with its full explanation, if it is one). It stays for the
next job, whose compile finds Numba warm, until its standard input ends.
"""
import json
import sys


def main() -> int:
    from .compiler import compile_into_disk_cache  # before the first job arrives: the start-up
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            compile_into_disk_cache(json.loads(line))
            reply = "ok"
        except Exception as exc:  # reported to the asking process, which compiles it again itself
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reply = f"error {type(exc).__name__}: {message}"
        try:
            print(reply, flush=True)
        except (BrokenPipeError, OSError):  # the asking process has ended; the cache has the program
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

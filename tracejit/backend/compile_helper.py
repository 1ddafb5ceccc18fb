"""The helper process of background compiles: ``python -m tracejit.backend.compile_helper``.

Layer: backend. Reads compile jobs (``compiler._job``: the program's source, cache key, flags
and argument types), one JSON object per line on standard input, and compiles each with
``compiler.compile_into_disk_cache``, so that its machine code is in the disk cache when the
process that asked for it loads it. It answers each job with one line on standard output, the
job's key and ``ok``, or the key, ``error`` and the error's first line, in which case the
asking process compiles the program itself (and raises the error with its full explanation, if
it is one); anything else printed while it compiles goes to standard error. It stays for the
next job, whose compile finds Numba warm, until its standard input ends or no job came for
``IDLE_SECONDS`` (it holds ~160 MB; the asking process starts another when it needs one).
"""
import json
import queue
import sys
import threading

IDLE_SECONDS = 120.0


def main() -> int:
    replies, sys.stdout = sys.stdout, sys.stderr  # standard output carries the replies alone
    from .compiler import compile_into_disk_cache  # before the first job arrives: the start-up
    lines = queue.Queue()

    def read_jobs():
        for line in sys.stdin:
            lines.put(line)
        lines.put(None)
    threading.Thread(target=read_jobs, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            return 0
        if line is None:
            return 0
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            compile_into_disk_cache(job)
            reply = "ok"
        except Exception as exc:  # reported to the asking process, which compiles it again itself
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reply = f"error {type(exc).__name__}: {message}"
        try:
            print(job["key"], reply, file=replies, flush=True)
        except (BrokenPipeError, OSError):  # the asking process has ended; the cache has the program
            return 0


if __name__ == "__main__":
    sys.exit(main())

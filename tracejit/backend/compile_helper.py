"""The helper process of background compiles: ``python -m tracejit.backend.compile_helper``.

Layer: backend. Reads one compile job (``compiler._job``: the program's source, cache key,
flags and argument types) as JSON on standard input and compiles it with
``compiler.compile_into_disk_cache``, so that its machine code is in the disk cache when the
process that asked for it loads it. Exit status 0 on success; on failure the error is the last
line of standard error, and the asking process compiles the program itself (which raises the
error with its full explanation, if it is one).
"""
import json
import sys


def main() -> int:
    job = json.load(sys.stdin)
    from .compiler import compile_into_disk_cache
    try:
        compile_into_disk_cache(job)
    except Exception as exc:  # reported to the asking process, which compiles it again itself
        print(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

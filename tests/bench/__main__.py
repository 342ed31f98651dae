"""`make bench`: run every benchmark module (tests/bench/bench_*.py) or the ones named.

Each module exposes `run() -> Iterable[dict]`; every dict is printed as one JSON line
(`{"name", "value", "unit", ...}`) and appended to bench-results.jsonl. The launcher has started
throwaway PostgreSQL/Redis (or uses DATABASE_URL/REDIS_URL) and this process migrates first.
"""
import importlib
import json
import os
import pkgutil
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopswift_ops.settings")


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    folder = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if m.name.startswith("bench_"))
    wanted = [a if a.startswith("bench_") else f"bench_{a}" for a in argv]
    if wanted:
        unknown = set(wanted) - set(names)
        if unknown:
            print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(names)}", file=sys.stderr)
            return 2
        names = wanted
    failed = 0
    with open(Path(__file__).resolve().parents[2] / "bench-results.jsonl", "a") as log:
        for name in names:
            started = time.monotonic()
            try:
                module = importlib.import_module(f"tests.bench.{name}")
                for result in module.run():
                    line = json.dumps(result)
                    print(line, flush=True)
                    log.write(line + "\n")
            except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
                failed += 1
                traceback.print_exc()
                print(json.dumps({"name": name, "error": "failed; see traceback above"}), flush=True)
            print(f"# {name} took {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

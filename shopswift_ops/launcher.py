"""The process behind `make run`, `make test`, `make bench` and `make manage`.

It starts embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set, exports their URLs to
every child process, and stops everything it started on exit (Ctrl-C included).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from shopswift_ops.embedded import EmbeddedServices, PREFERRED_REDIS_PORT, ServicesBusy, say

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def _services(stack: ExitStack, data_dir: Path, *, preferred_redis_port: int | None) -> dict[str, str]:
    """Start what the environment does not provide; return the variables for child processes."""
    need_pg = not os.environ.get("DATABASE_URL")
    need_redis = not os.environ.get("REDIS_URL")
    env = dict(os.environ)
    env["SHOPSWIFT_DATA_DIR"] = str(data_dir)
    if need_pg or need_redis:
        services = EmbeddedServices(data_dir, postgres=need_pg, redis=need_redis, redis_port=preferred_redis_port)
        services.start()
        stack.callback(services.stop)
        env.update(services.env())
    else:
        say("using DATABASE_URL and REDIS_URL from the environment")
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def _stop_children(children: list[tuple[str, subprocess.Popen]]) -> None:
    for _, proc in children:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 15
    for name, proc in children:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in time; killing it")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(args: argparse.Namespace) -> int:
    data_dir = Path(os.environ.get("SHOPSWIFT_DATA_DIR", BASE_DIR / ".data")).resolve()
    port = int(os.environ.get("PORT", "8000"))
    with ExitStack() as stack:
        env = _services(stack, data_dir, preferred_redis_port=PREFERRED_REDIS_PORT)
        env.setdefault("DEBUG", "true")
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "setup_demo", "-v", "0")
        processes = {
            "web": [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "--access-log", str(data_dir / "access.log"),
                    "shopswift_ops.asgi:application"],
            "worker": [str(BIN / "celery"), "-A", "shopswift_ops", "worker", "-l", "WARNING", "--concurrency", "2", "-n", "worker@%h"],
            "beat": [str(BIN / "celery"), "-A", "shopswift_ops", "beat", "-l", "WARNING", "-s", str(data_dir / "celerybeat-schedule")],
        }
        if (BASE_DIR / "rollout" / "management" / "commands" / "simulate.py").exists() and not args.no_simulator:
            processes["simulator"] = [PYTHON, "manage.py", "simulate", "--scenario", args.scenario, "--speed", str(args.speed),
                                      "--url", f"http://127.0.0.1:{port}", "--token-file", str(data_dir / "demo-token"),
                                      "--backfill-hours", "2", "--backfill-scenario", "baseline", "--quiet"]
        children: list[tuple[str, subprocess.Popen]] = []
        stack.callback(_stop_children, children)
        for name, command in processes.items():
            children.append((name, subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)))
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/healthz", process=dict(children)["web"])
        except NotServing as exc:
            raise SystemExit(str(exc)) from None
        print(f"\nShopSwift Ops is up: http://127.0.0.1:{port}/\n", flush=True)
        print((data_dir / "demo-logins.txt").read_text(), flush=True)
        print("Ctrl-C stops everything; data stays in", data_dir, flush=True)
        stopping = False

        def _on_signal(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None and name != "simulator":
                    say(f"{name} exited with code {proc.returncode}; stopping everything")
                    stopping = True
            time.sleep(0.5)
        say("stopping…")
    return 0


class NotServing(RuntimeError):
    pass


def wait_until_serving(url: str, *, process: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Poll `url` until it answers 200; fail early if `process` (the server) has exited.
    `make run`, the tests and the benchmarks that start a Daphne all wait through this."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NotServing(f"the server for {url} exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise NotServing(f"{url} did not answer within {timeout:.0f}s")


def _throwaway(stack: ExitStack, prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("SHOPSWIFT_TMP")))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    return folder


def test(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        data_dir = _throwaway(stack, "shopswift-test-")
        env = _services(stack, data_dir, preferred_redis_port=None)
        # Importing shopswift_ops (for embedded.py) set DJANGO_SETTINGS_MODULE through the Celery
        # app; pytest must take the test settings named in pyproject.toml instead.
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return subprocess.run([PYTHON, "-m", "pytest", *args.rest], cwd=BASE_DIR, env=env).returncode


def bench(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        data_dir = _throwaway(stack, "shopswift-bench-")
        env = _services(stack, data_dir, preferred_redis_port=None)
        return subprocess.run([PYTHON, "-m", "tests.bench", *args.rest], cwd=BASE_DIR, env=env).returncode


def manage(args: argparse.Namespace) -> int:
    data_dir = Path(os.environ.get("SHOPSWIFT_DATA_DIR", BASE_DIR / ".data")).resolve()
    with ExitStack() as stack:
        env = _services(stack, data_dir, preferred_redis_port=PREFERRED_REDIS_PORT)
        env.setdefault("DEBUG", "true")
        return subprocess.run([PYTHON, "manage.py", *args.rest], cwd=BASE_DIR, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launcher")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--scenario", default="seed-incident")
    run_parser.add_argument("--speed", type=float, default=24.0)
    run_parser.add_argument("--no-simulator", action="store_true")
    for name in ("test", "bench", "manage"):
        sub_parser = sub.add_parser(name)
        sub_parser.add_argument("rest", nargs=argparse.REMAINDER)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("test", "bench", "manage"):
        # Everything after the command belongs to pytest / the benchmarks / manage.py.
        args = argparse.Namespace(command=argv[0], rest=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        return {"run": run, "test": test, "bench": bench, "manage": manage}[args.command](args)
    except ServicesBusy as exc:
        say(str(exc))
        return 2
    except subprocess.CalledProcessError as exc:
        say(f"{' '.join(map(str, exc.cmd))} failed with code {exc.returncode}")
        return exc.returncode


if __name__ == "__main__":
    sys.exit(main())

"""Real processes for fault, multi-process and load tests: Daphne web servers and Celery workers
/ beat, started as `make run` starts them, against whatever DATABASE_URL / REDIS_URL say."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from shopswift_ops.embedded import free_port
from shopswift_ops.launcher import NotServing, wait_until_serving

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent




def process_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "shopswift_ops.settings",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "false",
        "SECURE_COOKIES": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(overrides)
    return env


class Proc:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def kill_hard(self) -> None:
        """SIGKILL the whole process group (a worker and its pool children die mid-task)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_hard()
        self._log.close()


def start_daphne(env: dict[str, str], log_dir: Path, *, name: str = "web", port: int | None = None) -> tuple[Proc, str]:
    port = port or free_port()
    proc = Proc(name, [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "shopswift_ops.asgi:application"], env, log_dir)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc)
    return proc, url


def start_worker(env: dict[str, str], log_dir: Path, *, name: str = "worker", concurrency: int = 1,
                 queues: str | None = None, pool: str | None = None) -> Proc:
    command = [str(BIN / "celery"), "-A", "shopswift_ops", "worker", "-l", "INFO", "--concurrency", str(concurrency),
               "-n", f"{name}@%h", "--without-gossip", "--without-mingle"]
    if queues:
        command += ["-Q", queues]
    if pool:
        command += ["--pool", pool]
    return Proc(name, command, env, log_dir)


def start_beat(env: dict[str, str], log_dir: Path, *, name: str = "beat") -> Proc:
    return Proc(name, [str(BIN / "celery"), "-A", "shopswift_ops", "beat", "-l", "INFO",
                       "-s", str(log_dir / f"{name}-schedule")], env, log_dir)


def wait_http(url: str, proc: Proc, timeout: float = 60) -> None:
    try:
        wait_until_serving(url, process=proc.popen, timeout=timeout)
    except NotServing as exc:
        raise RuntimeError(f"{exc}:\n{proc.log_tail()}") from None


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextmanager
def processes():
    """Collects Proc objects and stops them all on exit, in reverse order."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=REPO, env=env, check=True)

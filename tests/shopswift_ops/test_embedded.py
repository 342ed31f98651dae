"""The embedded PostgreSQL/Redis path of `make run` / `make test` (real servers, throwaway folders)."""
import os
import signal
import subprocess

import psycopg
import pytest
import redis

from shopswift_ops.embedded import EmbeddedServices, ServicesBusy

pytestmark = pytest.mark.slow


def _pg_query(services, sql):
    with psycopg.connect(host=services.socket_dir, user="postgres", dbname="shopswift", autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else None


def test_start_stop_restart_keeps_data(tmp_path):
    with EmbeddedServices(tmp_path) as services:
        _pg_query(services, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        client = redis.Redis.from_url(services.redis_url)
        client.set("kept", "yes")
        client.save()
        assert services.database_url.endswith("/shopswift") and services.redis_url.startswith("redis://127.0.0.1:")
    with EmbeddedServices(tmp_path) as services:
        assert _pg_query(services, "SELECT x FROM kept") == [(42,)]
        assert redis.Redis.from_url(services.redis_url).get("kept") == b"yes"
        assert _pg_query(services, "SHOW shared_buffers") == [("1GB",)]


def test_a_second_owner_of_the_same_folder_is_refused(tmp_path):
    with EmbeddedServices(tmp_path, redis=False):
        with pytest.raises(ServicesBusy, match="in use"):
            EmbeddedServices(tmp_path, redis=False).start()


def test_recovers_from_a_killed_run(tmp_path, capfd):
    services = EmbeddedServices(tmp_path)
    services.start()
    pg_pid = int((tmp_path / "pg" / "postmaster.pid").read_text().splitlines()[0])
    redis_pid = services._redis_proc.pid
    # Simulate `kill -9` of the whole run: servers die, files stay behind.
    os.kill(pg_pid, signal.SIGKILL)
    os.kill(redis_pid, signal.SIGKILL)
    services._redis_proc.wait()
    services._lock_file.close()
    services._lock_file = None
    services._pg_server = services._redis_proc = None
    assert (tmp_path / "pg" / "postmaster.pid").exists()
    with EmbeddedServices(tmp_path) as again:
        assert _pg_query(again, "SELECT 1") == [(1,)]
        assert redis.Redis.from_url(again.redis_url).ping()
    err = capfd.readouterr().err
    assert "stale postmaster.pid" in err or "left by" in err


def test_restart_postgres_in_place(tmp_path):
    with EmbeddedServices(tmp_path, redis=False) as services:
        _pg_query(services, "CREATE TABLE t (x int)")
        services.restart_postgres()
        assert _pg_query(services, "SELECT count(*) FROM t") == [(0,)]


def test_launcher_test_command_exports_urls(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["SHOPSWIFT_TMP"] = str(tmp_path)
    script = "import os; print(os.environ['DATABASE_URL']); print(os.environ['REDIS_URL'])"
    # `launcher test` runs pytest; `-c` of python is not pytest, so use a tiny pytest file.
    probe = tmp_path / "test_probe.py"
    probe.write_text(f"def test_probe():\n    {script.replace('; ', chr(10) + '    ')}\n")
    result = subprocess.run(
        [os.sys.executable, "-m", "shopswift_ops.launcher", "test", str(probe), "-q", "-s", "-p", "no:django",
         "--rootdir", str(tmp_path), "-c", os.devnull],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "postgres://postgres@" in result.stdout and "redis://127.0.0.1:" in result.stdout
    assert "PostgreSQL stopped" in result.stderr and "Redis stopped" in result.stderr
    assert not list(tmp_path.glob("shopswift-test-*")), "the throwaway folder is removed"

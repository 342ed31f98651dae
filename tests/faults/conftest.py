"""A stack of its own for fault tests: embedded PostgreSQL + Redis in a temporary folder (so a
restart hurts nobody else's tests), migrated, with Daphne on a free port pointed at it."""
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from shopswift_ops.embedded import EmbeddedServices
from tests.faults.processes import REPO, migrate, process_env, processes, start_daphne


def throwaway_folder(prefix: str) -> Path:
    # Not pytest's tmp_path: its parent is private to root, and the embedded PostgreSQL runs as
    # its own system user, which must reach the data folder (the launcher does the same).
    return Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("SHOPSWIFT_TMP")))


class Stack:
    def __init__(self, services: EmbeddedServices, folder: Path):
        self.services = services
        self.folder = folder
        self.env = process_env(**services.env(), SHOPSWIFT_DATA_DIR=str(folder))
        self.procs = []
        self.urls: list[str] = []

    def token(self, name: str, scopes: str) -> str:
        out = subprocess.run([sys.executable, "manage.py", "create_api_token", name, "--scopes", scopes], cwd=REPO,
                             env=self.env, capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]

    def sql(self, query: str, params=None):
        with psycopg.connect(self.services.database_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            return conn.execute(query, params).fetchall()


@contextmanager
def own_stack(prefix: str):
    """Embedded PostgreSQL + Redis in a throwaway folder, migrated; the processes put in
    `stack.procs` are stopped, and the folder removed, on exit."""
    folder = throwaway_folder(prefix)
    services = EmbeddedServices(folder)
    services.start()
    try:
        built = Stack(services, folder)
        migrate(built.env)
        with processes() as procs:
            built.procs = procs
            yield built
    finally:
        services.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with own_stack("shopswift-fault-") as built:
        web, url = start_daphne(built.env, built.folder / "logs")
        built.procs.append(web)
        built.urls.append(url)
        yield built

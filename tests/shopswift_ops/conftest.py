import pytest

from shopswift_ops import ratelimit


def _delete(pattern: str) -> None:
    client = ratelimit.client()
    keys = list(client.scan_iter(match=pattern, count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def clean_login_throttle(settings):
    """Login failure counts live in the shared test Redis; each test starts from none. These
    tests log in dozens of times, so they use settings_test's fast hasher whatever settings
    module the run uses."""
    from shopswift_ops import login_throttle

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    _delete("login:fail:*")
    login_throttle._local._counts.clear()
    yield
    _delete("login:fail:*")
    login_throttle._local._counts.clear()


@pytest.fixture
def redis_unreachable():
    """Point the shared Redis client at a port where nothing listens (a real connection refusal)."""
    import socket

    import redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    saved = ratelimit._client
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    ratelimit._client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.2,
                                    retry=Retry(NoBackoff(), 0))
    yield
    ratelimit._client = saved

import pytest

from shopswift_ops.env import EnvError, env_bool, env_int


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("ON", True), ("0", False), ("no", False)])
def test_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["yes please", "2", "tru"])
def test_a_bad_boolean_is_an_error_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("DEBUG", raw)
    with pytest.raises(EnvError, match="DEBUG"):
        env_bool("DEBUG", False)


def test_a_bad_integer_is_an_error(monkeypatch):
    monkeypatch.setenv("DB_POOL_MAX", "ten")
    with pytest.raises(EnvError, match="DB_POOL_MAX"):
        env_int("DB_POOL_MAX", 20)


def test_settings_refuse_a_bad_debug_value(monkeypatch):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import shopswift_ops.settings"], env={**__import__("os").environ, "DEBUG": "maybe"},
                            capture_output=True, text=True)
    assert result.returncode != 0 and "DEBUG" in result.stderr

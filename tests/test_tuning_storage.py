"""Storage selection, password masking and clear errors for unusable storages."""

import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tuning.storage import (
    JOURNAL_FILE_NAME,
    STORAGE_ENV_VAR,
    StorageError,
    is_server_storage,
    make_storage,
    mask_url,
    resolve_storage_url,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "s3cret-p@ss"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            f"postgresql+psycopg://tuner:{PASSWORD}@db.example:5432/optuna",
            "postgresql+psycopg://tuner:***@db.example:5432/optuna",
        ),
        ("postgresql+psycopg://tuner@db/optuna", "postgresql+psycopg://tuner@db/optuna"),
        ("mysql+pymysql://u:pw@h/db?charset=utf8", "mysql+pymysql://u:***@h/db?charset=utf8"),
        ("runs/demo/study.journal.log", "runs/demo/study.journal.log"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_default_storage_is_a_journal_under_runs(tmp_path, monkeypatch):
    monkeypatch.delenv(STORAGE_ENV_VAR, raising=False)
    url = resolve_storage_url(None, "demo", tmp_path / "runs")
    assert url == str(tmp_path / "runs" / "demo" / JOURNAL_FILE_NAME)
    storage = make_storage(url)
    assert isinstance(storage, optuna.storages.JournalStorage)
    optuna.create_study(study_name="demo", storage=storage)
    assert Path(url).is_file()


def test_env_var_and_explicit_storage(monkeypatch):
    monkeypatch.setenv(STORAGE_ENV_VAR, "postgresql+psycopg://u:pw@h/db")
    assert resolve_storage_url(None, "demo") == "postgresql+psycopg://u:pw@h/db"
    assert resolve_storage_url("other.log", "demo") == "other.log"
    assert is_server_storage("postgresql+psycopg://u:pw@h/db")
    assert not is_server_storage("sqlite:///x.db") and not is_server_storage("x.log")


def test_sqlite_url(tmp_path):
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert isinstance(storage, optuna.storages.RDBStorage)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost:6379", "unsupported storage"),
        (f"postgres://u:{PASSWORD}@127.0.0.1/db", "postgresql+psycopg://"),
        (f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:notaport/db", "malformed storage URL"),
        (f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:CLOSED_PORT/db", "cannot connect"),
        ("study.db", "sqlite:///"),
    ],
)
def test_unusable_storage_gives_clear_error_without_password(url, message):
    # the closed port is picked when the test runs, not at collection (pytest-xdist workers must collect the same ids)
    url = url.replace("CLOSED_PORT", str(_closed_port()))
    with pytest.raises(StorageError) as info:
        make_storage(url, connect_timeout=3)
    assert message in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.slow  # subprocesses
def test_cli_reports_unreachable_server_in_one_line(tmp_path):
    url = f"postgresql+psycopg://tuner:{PASSWORD}@127.0.0.1:{_closed_port()}/optuna"
    command = [sys.executable, "-m", "tuning", "run", "--study", "x", "--envs", "Pendulum-v1", "--n-trials", "1"]
    completed = subprocess.run(
        [*command, "--budget", "100", "--storage", url],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "error: cannot connect to postgresql+psycopg://tuner:***@127.0.0.1" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert PASSWORD not in completed.stderr + completed.stdout

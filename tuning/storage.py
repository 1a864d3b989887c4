"""
Where a study lives.

* No ``--storage`` and no ``TUNING_STORAGE``: a journal file ``runs/NAME/study.journal.log`` (Optuna's
  documented multi-process backend on one machine; no set-up, and ``optuna-dashboard`` opens the path directly).
* A file path: a journal file there.
* ``sqlite:///FILE``: SQLite (allowed, but slow and fragile with several writers; see README).
* ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB`` (or ``mysql+pymysql://``): a database server, with heartbeats,
  so the trial of a worker that died is marked FAIL and re-queued once.

Passwords never reach a log or an error message: :func:`mask_url` hides them.
"""

import logging
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

logger = logging.getLogger(__name__)

STORAGE_ENV_VAR = "TUNING_STORAGE"
DEFAULT_RUNS_DIR = "runs"
JOURNAL_FILE_NAME = "study.journal.log"
_SERVER_SCHEMES = ("postgresql", "mysql")


class StorageError(RuntimeError):
    """A storage that cannot be used. The message names the problem and never contains a password."""


@dataclass(frozen=True)
class HeartbeatSettings:
    """
    Crash detection on server storages (ignored for journal files and SQLite).

    :param interval: seconds between a running trial's heartbeats
    :param grace_period: seconds without heartbeat after which a RUNNING trial is marked FAIL (by the next trial
        that starts in any worker); RL trials can stall for a while (GC, env start-up), so keep it well above
        ``interval`` (Optuna issue #5470: very short heartbeats crash workers)
    :param max_retry: how many times a failed trial's configuration is re-queued
    """

    interval: int = 60
    grace_period: int = 300
    max_retry: int = 1


def study_dir(study_name: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """
    :param study_name: study name
    :param runs_dir: parent of all study folders
    :return: the folder of the study's outputs (``runs/NAME``)
    """
    return Path(runs_dir) / study_name


def resolve_storage_url(storage: str | None, study_name: str, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> str:
    """
    :param storage: ``--storage`` value, or ``None``
    :param study_name: study name (names the default journal file)
    :param runs_dir: parent of all study folders
    :return: the explicit storage, else ``$TUNING_STORAGE``, else the default journal file path
    """
    if storage:
        return storage
    from_env = os.environ.get(STORAGE_ENV_VAR)
    if from_env:
        return from_env
    return str(study_dir(study_name, runs_dir) / JOURNAL_FILE_NAME)


def _scheme(url: str) -> str | None:
    return url.split("://", 1)[0].lower() if "://" in url else None


def mask_url(url: str) -> str:
    """
    Hide the password of a database URL (``postgresql+psycopg://user:***@host/db``); paths are returned as-is.

    :param url: storage URL or path
    :return: a string safe to log
    """
    if _scheme(url) is None:
        return url
    scheme, rest = url.split("://", 1)
    # Split at the last "@" before the path: a password may itself contain "@" or ":".
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    userinfo, _, host = authority.rpartition("@")
    user = userinfo.split(":", 1)[0]
    masked_userinfo = f"{user}:***" if ":" in userinfo else user
    return f"{scheme}://{masked_userinfo}@{host}{slash}{path}"


def _password(url: str) -> str | None:
    if _scheme(url) is None:
        return None
    authority = url.split("://", 1)[1].partition("/")[0]
    userinfo = authority.rpartition("@")[0]
    return userinfo.split(":", 1)[1] if ":" in userinfo else None


def _safe_reason(error: BaseException, url: str) -> str:
    """The first line of the driver's message, with the password removed in case a driver echoes the URL."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    password = _password(url)
    if password:
        text = text.replace(password, "***")
    return text


def make_storage(url: str, heartbeat: HeartbeatSettings | None = None, connect_timeout: int = 10) -> BaseStorage:
    """
    Open (and create if needed) the storage named by ``url``.

    :param url: path of a journal file, ``sqlite:///...``, ``postgresql+psycopg://...`` or ``mysql+pymysql://...``
    :param heartbeat: crash detection for server storages (defaults: :class:`HeartbeatSettings`)
    :param connect_timeout: seconds to wait for a database server before giving up
    :return: an Optuna storage
    :raises StorageError: unsupported URL, missing driver, unreachable server, bad credentials
    """
    scheme = _scheme(url)
    if scheme is None:
        return _journal_storage(Path(url))
    base = scheme.split("+", 1)[0]
    if base == "postgres":
        raise StorageError(f"unsupported URL scheme 'postgres://' in {mask_url(url)}: use postgresql+psycopg://")
    if base == "sqlite":
        return _rdb_storage(url, engine_kwargs={"connect_args": {"timeout": 60}}, heartbeat=None)
    if base in _SERVER_SCHEMES:
        engine_kwargs = {
            # Two connections per worker (trial + heartbeat thread), so a fleet fits PostgreSQL's default
            # max_connections=100; pre-ping because RL trials can be idle for an hour (Optuna #5600).
            "pool_size": 2,
            "max_overflow": 2,
            "pool_pre_ping": True,
            "pool_recycle": 1800,
            "connect_args": {"connect_timeout": connect_timeout},
        }
        return _rdb_storage(url, engine_kwargs=engine_kwargs, heartbeat=heartbeat or HeartbeatSettings())
    raise StorageError(
        f"unsupported storage {mask_url(url)!r}: expected a file path (journal), sqlite:///FILE, "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB or mysql+pymysql://..."
    )


def _journal_storage(path: Path) -> JournalStorage:
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        raise StorageError(f"{path} looks like an SQLite file: write sqlite:///{path} (a plain path is a journal file)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise StorageError(f"cannot open journal file {path}: {error.strerror or error}") from None


def _retry_callback(max_retry: int) -> RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        # Marked experimental since Optuna 2.8, yet it is the documented crash-recovery path (renamed from
        # RetryFailedTrialCallback in 4.9; the old name is deprecated).
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback(max_retry=max_retry)


def _rdb_storage(url: str, engine_kwargs: dict, heartbeat: HeartbeatSettings | None) -> RDBStorage:
    import sqlalchemy.exc

    kwargs: dict = {}
    if heartbeat is not None:
        kwargs = {
            "heartbeat_interval": heartbeat.interval,
            "grace_period": heartbeat.grace_period,
            "heartbeat_stale_trial_callback": _retry_callback(heartbeat.max_retry),
        }
    # Several workers starting together on an empty database race to create the schema (Optuna #1092, #3044);
    # the loser gets an integrity/programming error and simply retries once the winner is done.
    attempts = 5
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                # Heartbeats are marked experimental since Optuna 2.8 but are the documented crash-recovery path.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as error:
            if attempt == attempts - 1:
                raise StorageError(f"cannot create the schema in {mask_url(url)}: {_safe_reason(error, url)}") from None
            time.sleep(0.5 + random.random())
        except sqlalchemy.exc.OperationalError as error:
            if "already exists" in str(error) and attempt < attempts - 1:
                # SQLite reports the schema race as an OperationalError ("table studies already exists").
                time.sleep(0.5 + random.random())
                continue
            raise StorageError(f"cannot connect to {mask_url(url)}: {_safe_reason(error, url)}") from None
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ValueError) as error:
            raise StorageError(f"malformed storage URL {mask_url(url)}: {_safe_reason(error, url)}") from None
        except ImportError:
            hint = "install psycopg[binary] and use postgresql+psycopg://" if url.startswith("postgresql") else "install it"
            raise StorageError(f"the database driver for {mask_url(url)} is not installed ({hint})") from None
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise StorageError(f"cannot use {mask_url(url)}: {_safe_reason(error, url)}") from None
    raise AssertionError("unreachable")


def is_server_storage(url: str) -> bool:
    """
    :param url: storage URL or path
    :return: whether it is a database server (heartbeats on, crash recovery possible)
    """
    scheme = _scheme(url)
    return scheme is not None and scheme.split("+", 1)[0] in _SERVER_SCHEMES

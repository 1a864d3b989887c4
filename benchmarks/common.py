"""Helpers shared by the benchmark scripts: environments, atomic files, machine and version reports."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym

#: Where committed results live (``benchmarks/results``).
RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Set to ``1`` to let the scripts run with upstream ``stable_baselines3.DDPG`` standing in for ``DDPGPlus``
#: (only for developing the benchmarks before the package exists; results are labelled accordingly).
STAND_IN_ENV_VAR = "BENCHMARKS_DDPG_PLUS_STAND_IN"


def register_envs(env_id: str) -> None:
    """
    Import the package that registers ``env_id`` with gymnasium when it is not a built-in one.

    :param env_id: Gymnasium environment id.
    """
    if "Bullet" in env_id:
        # Registers HalfCheetahBulletEnv-v0 and friends; pybullet prints its build time on import.
        import pybullet_envs_gymnasium  # noqa: F401


@contextlib.contextmanager
def silence_stdout_fd() -> Iterator[None]:
    """
    Redirect file descriptor 1 to ``/dev/null``: PyBullet's C code prints ``argv[0]=`` on every client it starts,
    which Python's ``sys.stdout`` redirection cannot catch and which would drown the progress output.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        # C stdio buffers what it printed; flush it while fd 1 still points to /dev/null.
        _libc_fflush()
        os.dup2(saved, 1)
        os.close(saved)


def _libc_fflush() -> None:
    """Flush every C stdio stream (no-op where libc cannot be loaded)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def make_env(env_id: str, seed: int | None = None, render_mode: str | None = None) -> gym.Env:
    """
    Create a single gymnasium environment, registering PyBullet ids on demand.

    :param env_id: Gymnasium environment id.
    :param seed: Seed for the first ``reset()`` (done here) and the action space (``None`` leaves them unseeded).
    :param render_mode: Passed to ``gym.make`` (e.g. ``"rgb_array"``).
    :return: The environment.
    """
    register_envs(env_id)
    quiet = silence_stdout_fd() if "Bullet" in env_id else contextlib.nullcontext()
    with quiet:
        env = gym.make(env_id, render_mode=render_mode)
        # PyBullet connects (and prints) on the first reset, so do it here, under the silencer.
        env.reset(seed=seed)
    if seed is not None:
        env.action_space.seed(seed)
    return env


def load_ddpg_plus() -> type:
    """
    Return the ``DDPGPlus`` class.

    When the package is missing and ``BENCHMARKS_DDPG_PLUS_STAND_IN=1`` is set, upstream ``DDPG`` stands in for it,
    which lets the benchmark machinery be developed and tested before the package exists.

    :return: ``sb3_ddpg_plus.DDPGPlus`` (or ``stable_baselines3.DDPG`` as a stand-in).
    """
    try:
        from sb3_ddpg_plus import DDPGPlus
    except ImportError:
        if os.environ.get(STAND_IN_ENV_VAR) != "1":
            raise
        from stable_baselines3 import DDPG

        warnings.warn(f"sb3_ddpg_plus is not importable: upstream DDPG stands in for DDPGPlus ({STAND_IN_ENV_VAR}=1)")
        return DDPG
    return DDPGPlus


def is_stand_in(cls: type) -> bool:
    """
    :param cls: Class returned by :func:`load_ddpg_plus`.
    :return: Whether it is the upstream stand-in rather than the real ``DDPGPlus``.
    """
    return not cls.__module__.startswith("sb3_ddpg_plus")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """
    Write a text file atomically: a temporary file in the same folder, then ``os.replace``, so that a reader (or a
    resumed run) never sees a half-written file.

    :param path: Destination.
    :param text: Content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """
    Binary counterpart of :func:`atomic_write_text`.

    :param path: Destination.
    :param data: Content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        # mkstemp creates the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """
    Write ``obj`` as indented JSON, atomically.

    :param path: Destination.
    :param obj: JSON-serialisable object.
    """
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def cpu_model() -> str:
    """
    :return: The CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere).
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """
    :return: CPU model, logical cores, cores usable by this process, load average and OS of this machine.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average": load,
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    """
    :return: Versions of Python and of the packages that decide the numbers (``"-"`` when one is not installed).
    """
    from importlib import metadata

    result = {"python": platform.python_version()}
    for dist in (
        "sb3_ddpg_plus",
        "stable_baselines3",
        "torch",
        "numpy",
        "gymnasium",
        "pybullet",
        "pybullet_envs_gymnasium",
        "rl_zoo3",
    ):
        try:
            result[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            result[dist] = "-"
    if result["sb3_ddpg_plus"] == "-":
        # Not installed as a distribution (e.g. run from the repository): ask the module itself.
        try:
            import sb3_ddpg_plus

            result["sb3_ddpg_plus"] = str(getattr(sb3_ddpg_plus, "__version__", "source"))
        except ImportError:
            pass
    return result


def command_line() -> str:
    """
    :return: The command that started this process, as a shell would accept it (``python -m benchmarks ...``).
    """
    argv = list(sys.argv)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        # Run with ``-m``: argv[0] is the file path, the module name is what the user typed.
        module = spec.name.removesuffix(".__main__")
        return shlex.join(["python", "-m", module, *argv[1:]])
    return shlex.join(["python", *argv])


def now_utc() -> str:
    """
    :return: The current UTC time in ISO 8601 format, to the second.
    """
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()

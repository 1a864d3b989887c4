"""
Environment creation for experiments: Gymnasium ids, with the plugins that register more of them (PyBullet) imported
on demand, and PyBullet's C-level prints kept out of the progress output.
"""

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator

import gymnasium as gym

#: Gymnasium plugins that register environments on import; tried, in order, when an id is unknown.
ENV_PLUGINS = ("pybullet_envs_gymnasium",)


class UnknownEnvironmentError(ValueError):
    """No Gymnasium registration (nor plugin) knows this environment id."""


def ensure_registered(env_id: str) -> None:
    """
    Import the plugin that registers ``env_id`` if Gymnasium does not know it yet (e.g. the PyBullet tasks).

    :param env_id: Gymnasium id
    :raises UnknownEnvironmentError: no plugin registers it
    """
    if env_id in gym.registry:
        return
    missing = []
    for module in ENV_PLUGINS:
        try:
            with silence_stdout_fd():  # pybullet prints its build time on import
                importlib.import_module(module)
        except ImportError:
            missing.append(module)
            continue
        if env_id in gym.registry:
            return
    hint = f'; not installed: {", ".join(missing)} (pip install "sb3_ddpg_plus[pybullet]")' if missing else ""
    raise UnknownEnvironmentError(
        f"unknown environment {env_id!r} (not registered by gymnasium or {', '.join(ENV_PLUGINS)}{hint})"
    )


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
    Create one Gymnasium environment and reset it once (PyBullet connects, and prints, on the first reset: that
    happens here, silenced).

    :param env_id: Gymnasium id (plugin ids are registered on demand)
    :param seed: Seed of that first ``reset()`` and of the action space (``None`` leaves them unseeded; a ``VecEnv``
        seeds its next reset itself)
    :param render_mode: Passed to ``gym.make`` (e.g. ``"rgb_array"``)
    :return: The environment
    """
    ensure_registered(env_id)
    quiet = silence_stdout_fd() if "Bullet" in env_id else contextlib.nullcontext()
    with quiet:
        env = gym.make(env_id, render_mode=render_mode)
        env.reset(seed=seed)
    if seed is not None:
        env.action_space.seed(seed)
    return env

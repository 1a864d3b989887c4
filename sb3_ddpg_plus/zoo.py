"""
rl-zoo3 integration: ``python -m sb3_ddpg_plus.zoo COMMAND --algo ddpg_plus --env Pendulum-v1 ...``.

rl-zoo3 has no plugin entry point and checks ``--algo`` against its ``ALGOS`` dict before importing anything else,
so this module registers DDPGPlus (algorithm, Optuna sampler and converter) in the zoo's shared dicts and then runs
the zoo's own script (the route the zoo documents for SBX). The commands are the zoo's entry points that apply to a
continuous-action algorithm:

- ``train`` (also ``-optimize`` and resuming with ``-i model.zip``) and ``enjoy``;
- ``record_video`` (a video of a trained agent, rendered with ``render_mode="rgb_array"``);
- ``record_training`` (a video of every checkpoint, the best and the final model; needs ``ffmpeg``, taken from the
  ``imageio-ffmpeg`` package where none is on the ``PATH``);
- ``plot_train``, ``all_plots`` and ``plot_from_file`` (the zoo's plots; they read log folders, any algorithm).

Without ``--conf-file``, ``train`` uses the package's default hyperparameters: rl-zoo3's own ``ddpg.yml``, read as
plain data, with our differences from ``sb3_ddpg_plus/hyperparams/ddpg_plus.yml`` merged in
(:func:`sb3_ddpg_plus.experiments.zoo_hyperparams.ddpg_plus_hyperparams`). rl-zoo3 takes them from this module: a
``--conf-file`` that is neither ``.yml`` nor ``.py`` is a module whose ``hyperparams`` dict it reads
(``ExperimentManager.read_hyperparameters``), so nothing is written to disk and nothing is ``exec``-ed.
``-optimize`` searches the space of ``python -m tuning`` (:mod:`sb3_ddpg_plus.experiments.search_space`, minus the
budget-bound knobs, which stay the file's).
``--gym-packages pybullet_envs_gymnasium`` registers the PyBullet tasks. Everything these commands import is in the
``zoo`` extra: ``pip install "sb3_ddpg_plus[zoo]"``.
"""

import contextlib
import importlib
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from sb3_ddpg_plus.ddpg_plus import DDPGPlus
from sb3_ddpg_plus.experiments.search_space import convert_ddpg_plus_params, sample_ddpg_plus_params
from sb3_ddpg_plus.experiments.zoo_hyperparams import ddpg_plus_hyperparams

ALGO_NAME = "ddpg_plus"
#: ``--conf-file`` of ``train`` when none is given: this module, by name (rl-zoo3 imports it and reads its
#: ``hyperparams``; see :func:`__getattr__`).
DEFAULT_CONF_FILE = "sb3_ddpg_plus.zoo"


def __getattr__(name: str) -> Any:
    """
    ``hyperparams``: the default hyperparameters per environment id, as rl-zoo3 reads them from a ``--conf-file``
    module. Computed on access, not on import (rl-zoo3 may be missing, and its ``ddpg.yml`` is only read when
    needed), and a new dict each time (rl-zoo3 updates the entry it uses in place).

    :param name: The attribute
    :return: :func:`~sb3_ddpg_plus.experiments.zoo_hyperparams.ddpg_plus_hyperparams`'s table for ``hyperparams``
    :raises AttributeError: for any other name
    """
    if name == "hyperparams":
        return ddpg_plus_hyperparams()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register() -> None:
    """Register DDPGPlus in rl-zoo3's shared dicts (algorithm, sampler, converter)."""
    import rl_zoo3
    import rl_zoo3.hyperparams_opt as hyperparams_opt

    rl_zoo3.ALGOS[ALGO_NAME] = DDPGPlus
    hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_ddpg_plus_params
    hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO_NAME] = convert_ddpg_plus_params  # type: ignore[assignment]


# command -> (the zoo module that runs it, its function or None for a ``__main__`` script, the modules it needs).
# The modules are checked before anything runs: rl-zoo3 imports some of them without declaring them (requests in
# enjoy, moviepy in SB3's VecVideoRecorder, seaborn in the plots), and pandas only at the end of ``-optimize``.
COMMANDS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "train": ("rl_zoo3.train", "train", ()),
    "enjoy": ("rl_zoo3.enjoy", "enjoy", ()),
    "record_video": ("rl_zoo3.record_video", None, ("moviepy",)),
    "record_training": ("rl_zoo3.record_training", None, ("moviepy", "imageio_ffmpeg")),
    "plot_train": ("rl_zoo3.plots.plot_train", "plot_train", ()),
    "all_plots": ("rl_zoo3.plots.all_plots", "all_plots", ()),
    "plot_from_file": ("rl_zoo3.plots.plot_from_file", "plot_from_file", ()),
}
EXTRA_HINT = 'pip install "sb3_ddpg_plus[zoo]"'


def _usage() -> str:
    return (
        f"usage: python -m sb3_ddpg_plus.zoo {{{','.join(COMMANDS)}}} --algo ddpg_plus --env ENV [rl-zoo3 options]\n"
        "Runs rl-zoo3's script of that name with DDPGPlus registered; `python -m sb3_ddpg_plus.zoo COMMAND --help` "
        "lists its options."
    )


def _import_zoo(command: str, argv: list[str]) -> Any:
    """
    Import what ``command`` needs, turning a missing package into a message that names the extra to install.

    :param command: One of :data:`COMMANDS`
    :param argv: The command's arguments (``-optimize`` also needs pandas)
    :return: The zoo module that runs ``command``
    """
    module_name, _, needed = COMMANDS[command]
    if command == "train" and any(arg == "-optimize" or arg.startswith("--optimize") for arg in argv):
        needed = (*needed, "pandas")  # optuna's trials_dataframe(), for the report written after the last trial
    try:
        import rl_zoo3  # noqa: F401

        for name in needed:
            importlib.import_module(name)
        # record_video and record_training only run under __main__: import what they import, not the scripts
        return importlib.import_module("rl_zoo3.exp_manager" if COMMANDS[command][1] is None else module_name)
    except ModuleNotFoundError as error:
        missing = (error.name or str(error)).split(".")[0]
        raise SystemExit(
            f"python -m sb3_ddpg_plus.zoo {command} needs '{missing}', which is not installed; the zoo extra installs "
            f"everything the zoo's commands import: {EXTRA_HINT}"
        ) from error


@contextlib.contextmanager
def _record_training_patches() -> Iterator[None]:
    """
    rl-zoo3's record_training runs ``python -m rl_zoo3.record_video`` for each model (a new process, in which
    ``ddpg_plus`` would be unknown) and ``ffmpeg`` through the shell: run this module's record_video instead, with
    this interpreter, and put imageio-ffmpeg's binary on the ``PATH`` as ``ffmpeg`` where none is there.
    """
    original_call = subprocess.call

    def call(args: Any, *pargs: Any, **kwargs: Any) -> int:
        if isinstance(args, list | tuple) and list(args[:3]) == ["python", "-m", "rl_zoo3.record_video"]:
            args = [sys.executable, "-m", "sb3_ddpg_plus.zoo", "record_video", *args[3:]]
        return original_call(args, *pargs, **kwargs)

    with contextlib.ExitStack() as stack:
        original_path = os.environ.get("PATH")
        if shutil.which("ffmpeg") is None:
            import imageio_ffmpeg

            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="sb3_ddpg_plus_ffmpeg_"))
            os.symlink(imageio_ffmpeg.get_ffmpeg_exe(), os.path.join(folder, "ffmpeg"))
            os.environ["PATH"] = os.pathsep.join(p for p in (folder, original_path) if p)
        subprocess.call = call
        try:
            yield
        finally:
            subprocess.call = original_call
            if original_path is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = original_path


def _with_default_conf_file(argv: list[str]) -> list[str]:
    if any(arg in ("-conf", "--conf-file") or arg.startswith("--conf-file=") for arg in argv):
        return argv
    return [*argv, "--conf-file", DEFAULT_CONF_FILE]


def main(argv: list[str] | None = None) -> None:
    """
    :param argv: ``[COMMAND, <rl-zoo3 arguments>...]`` with COMMAND one of :data:`COMMANDS`
        (``sys.argv[1:]`` by default)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(_usage(), file=sys.stderr)
        raise SystemExit(2)
    command, rest = argv[0], argv[1:]
    module = _import_zoo(command, rest)
    register()
    if command == "train":
        rest = _with_default_conf_file(rest)
    module_name, function_name, _ = COMMANDS[command]
    sys.argv = [module_name, *rest]
    if function_name is not None:
        run: Callable[[], Any] = getattr(module, function_name)
        run()
        return
    patches = _record_training_patches() if command == "record_training" else contextlib.nullcontext()
    with patches:
        runpy.run_module(module_name, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

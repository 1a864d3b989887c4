"""
Checkpoints that lose nothing: crash-safe writes, random generator states, the algorithm's save/load
(:class:`SaveLoadMixin`), and a callback that keeps the last K checkpoints (model + replay buffer + VecNormalize
statistics) and resumes in one call.

A file is always written to a temporary file in the same folder and renamed over the target (``os.replace`` is
atomic on POSIX), so a process killed mid-save leaves the previous file intact. A checkpoint's files are listed in a
manifest written last, so a checkpoint is either complete or ignored.
"""

import io
import json
import os
import pickle
import random
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sb3_ddpg_plus.validation import IncompatiblePolicyError

MANIFEST = "checkpoints.json"
SelfSaveLoad = TypeVar("SelfSaveLoad", bound="SaveLoadMixin")


def _final_path(path: "str | os.PathLike[str]", suffix: str) -> Path:
    final = Path(path)
    # SB3 appends the suffix to a path without one: do the same so the renamed file is where SB3 would write it
    return final.with_suffix(f".{suffix}") if final.suffix == "" else final


def atomic_write(path: "str | os.PathLike[str]", write: Callable[[str], object], suffix: str | None = None) -> Path:
    """
    Write a file through a temporary file in the same folder and an atomic rename (``os.replace``): a reader, or a
    process killed mid-write, sees the old file or the new one, never half of one. The package's one atomic writer:
    models, buffers, hyperparameter files and the result files of ``tuning/`` and ``benchmarks/`` all go through it.

    :param path: Destination
    :param write: Function that writes the file at the path it is given
    :param suffix: File suffix without the dot (``"zip"``, ``"pkl"``) for writers that append one themselves, as SB3's
        ``save`` does: it ends the temporary name and is appended to ``path`` when that has none. ``None`` (text and
        other plain writers) writes to ``path`` exactly.
    :return: The final path
    """
    final = _final_path(path, suffix) if suffix else Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.{os.getpid()}.tmp.{suffix}" if suffix else f".{final.name}.{os.getpid()}.tmp")
    try:
        write(str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def capture_rng_states(action_space: Any = None) -> dict[str, Any]:
    """
    :param action_space: An action space whose generator is captured too
    :return: The states of Python's, numpy's and torch's global generators (and the action space's)
    """
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": th.get_rng_state(),
    }
    if th.cuda.is_available():
        states["torch_cuda"] = th.cuda.get_rng_state_all()
    if action_space is not None:
        states["action_space"] = action_space.np_random.bit_generator.state
    return states


def restore_rng_states(states: dict[str, Any], action_space: Any = None) -> None:
    """
    :param states: From :func:`capture_rng_states`
    :param action_space: The action space whose generator is restored too
    """
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    th.set_rng_state(states["torch"])
    if "torch_cuda" in states and th.cuda.is_available():
        th.cuda.set_rng_state_all(states["torch_cuda"])
    if action_space is not None and "action_space" in states:
        action_space.np_random.bit_generator.state = states["action_space"]


class KeepLastCheckpointCallback(CheckpointCallback):
    """
    SB3's ``CheckpointCallback`` (same arguments), plus: every file is written atomically, a manifest names the
    files of each complete checkpoint, and only the last ``keep_last`` checkpoints are kept. Resume with
    :func:`load_latest_checkpoint` (or ``DDPGPlus.load_latest_checkpoint``).

    :param save_freq: Save a checkpoint every ``save_freq`` calls of the callback (environment steps of the VecEnv)
    :param save_path: Folder of the checkpoints
    :param name_prefix: Common prefix of the files
    :param save_replay_buffer: Save the replay buffer too (needed to continue training exactly)
    :param save_vecnormalize: Save the ``VecNormalize`` statistics too
    :param keep_last: Number of checkpoints kept (older ones are deleted), >= 1
    :param verbose: Verbosity level
    """

    def __init__(
        self,
        save_freq: int,
        save_path: str,
        name_prefix: str = "rl_model",
        save_replay_buffer: bool = True,
        save_vecnormalize: bool = True,
        keep_last: int = 3,
        verbose: int = 0,
    ):
        if not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"`keep_last` must be a positive integer, got {keep_last!r}")
        if not isinstance(save_freq, int) or save_freq < 1:
            raise ValueError(f"`save_freq` must be a positive integer, got {save_freq!r}")
        super().__init__(save_freq, save_path, name_prefix, save_replay_buffer, save_vecnormalize, verbose)
        self.keep_last = keep_last
        self._due = False

    def _on_step(self) -> bool:
        # SB3 calls on_step between env.step() and storing the transition: saving here would lose that transition,
        # so the save happens at the end of the rollout, once it is stored (before the gradient steps)
        if self.n_calls % self.save_freq == 0:
            self._due = True
        return True

    def _on_rollout_end(self) -> None:
        if self._due:
            self._due = False
            self.save_checkpoint()

    def save_checkpoint(self) -> dict[str, str]:
        """
        Save the model (and buffer and statistics), then record them in the manifest and prune old checkpoints.

        :return: The files of this checkpoint
        """
        files = {"model": self._checkpoint_path(extension="zip")}
        self.model.save(files["model"])
        if self.save_replay_buffer and getattr(self.model, "replay_buffer", None) is not None:
            files["replay_buffer"] = self._checkpoint_path("replay_buffer_", extension="pkl")
            self.model.save_replay_buffer(files["replay_buffer"])  # type: ignore[attr-defined]
        vec_normalize = self.model.get_vec_normalize_env()
        if self.save_vecnormalize and vec_normalize is not None:
            files["vecnormalize"] = self._checkpoint_path("vecnormalize_", extension="pkl")
            atomic_write(files["vecnormalize"], vec_normalize.save, "pkl")
        files = {key: os.path.basename(value) for key, value in files.items()}
        manifest = read_manifest(self.save_path)
        checkpoints = [c for c in manifest["checkpoints"] if c["model"] != files["model"]]
        checkpoints.append({"num_timesteps": int(self.num_timesteps), **files})
        for old in checkpoints[: -self.keep_last]:
            for key in ("model", "replay_buffer", "vecnormalize"):
                if key in old:
                    Path(self.save_path, old[key]).unlink(missing_ok=True)
        manifest["checkpoints"] = checkpoints[-self.keep_last :]
        text = json.dumps(manifest, indent=2)
        atomic_write(Path(self.save_path, MANIFEST), lambda tmp: Path(tmp).write_text(text), "json")
        if self.verbose >= 2:
            print(f"Saved checkpoint {files} to {self.save_path}")
        return files


def read_manifest(save_path: "str | os.PathLike[str]") -> dict[str, Any]:
    """
    :param save_path: Folder of the checkpoints
    :return: The manifest (``{"checkpoints": [...]}``, oldest first; empty when there is none)
    """
    path = Path(save_path, MANIFEST)
    if not path.exists():
        return {"checkpoints": []}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Checkpoint manifest {path} is unreadable: {error}") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checkpoints"), list):
        raise ValueError(f"Checkpoint manifest {path} is not a checkpoint list")
    return manifest


def load_latest_checkpoint(
    algorithm_class: Any,
    save_path: "str | os.PathLike[str]",
    env: VecEnv | None = None,
    device: th.device | str = "auto",
    **kwargs: Any,
) -> Any:
    """
    Load the latest complete checkpoint: model, replay buffer and ``VecNormalize`` statistics (which wrap ``env``).
    Continue with ``model.learn(total_timesteps, reset_num_timesteps=False)``.

    :param algorithm_class: The algorithm (``DDPGPlus``)
    :param save_path: Folder of the checkpoints
    :param env: The environment to continue training on (``VecNormalize`` is added when statistics were saved)
    :param device: Device to load the model on
    :param kwargs: Passed to ``load``
    :return: The model
    """
    checkpoints = read_manifest(save_path)["checkpoints"]
    if not checkpoints:
        raise FileNotFoundError(f"No checkpoint in {save_path} (no {MANIFEST})")
    latest = checkpoints[-1]
    if env is not None and "vecnormalize" in latest:
        if not isinstance(env, VecEnv):
            from stable_baselines3.common.vec_env import DummyVecEnv

            single_env = env
            env = DummyVecEnv([lambda: single_env])
        env = VecNormalize.load(str(Path(save_path, latest["vecnormalize"])), env)
    model = algorithm_class.load(Path(save_path, latest["model"]), env=env, device=device, **kwargs)
    if "replay_buffer" in latest:
        model.load_replay_buffer(Path(save_path, latest["replay_buffer"]))
    return model


class SaveLoadMixin(BaseAlgorithm):
    """
    SB3's ``save``/``load`` (same arguments, same files) with: atomic writes, the global generators' states saved
    (restored on request: ``load(..., restore_rng_state=True)``), clear errors naming the file and what was wrong,
    and keyword arguments of ``load`` that the algorithm converts itself (plain-data noise).
    Put it before the SB3 base class: ``class Algorithm(SaveLoadMixin, OffPolicyAlgorithm)``.
    """

    #: ``load`` keyword arguments handed to :meth:`_apply_load_kwargs` after loading instead of set as they are
    load_time_kwargs: ClassVar[tuple[str, ...]] = ()

    def save(
        self,
        path: "str | os.PathLike[str] | io.BufferedIOBase",
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """
        Save all the attributes of the object and the model parameters in a zip-file, as SB3 does, plus the state
        of the global random generators (``load(..., restore_rng_state=True)`` restores it, so that a reloaded
        checkpoint continues the same random sequences). A path is written atomically: a temporary file renamed
        over it, so a crash mid-save leaves the previous file intact.

        :param path: Path to the file (or a file-like object) where the agent should be saved
        :param exclude: Names of parameters that should be excluded in addition to the default ones
        :param include: Names of parameters that might be excluded but should be included anyway
        """
        self._rng_states = capture_rng_states(getattr(self, "action_space", None))
        try:
            if isinstance(path, io.BufferedIOBase):
                super().save(path, exclude, include)
            else:
                atomic_write(path, lambda tmp: super(SaveLoadMixin, self).save(tmp, exclude, include), "zip")
        finally:
            del self._rng_states

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfSaveLoad],
        path: "str | os.PathLike[str] | io.BufferedIOBase",
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        restore_rng_state: bool = False,
        **kwargs: Any,
    ) -> SelfSaveLoad:
        """
        Load a model saved with ``save`` (see SB3's ``BaseAlgorithm.load``).

        As in SB3, the global random generators are reseeded from the model's ``seed`` when it has one and left
        alone otherwise. ``restore_rng_state=True`` instead restores them (Python, numpy, torch, the action space)
        to their state at save time, so that training continues the same random sequences (checkpoint resume).

        A missing file raises ``FileNotFoundError``; a truncated or foreign file raises ``ValueError`` naming it and
        what was wrong. **Loading unpickles code: only load files you trust.**

        :param path: Path to the file (or a file-like object) to load the agent from
        :param env: The new environment to run the loaded model on
        :param device: Device on which the code should run
        :param custom_objects: Objects to replace upon loading (see SB3)
        :param print_system_info: Whether to print the system info of the saved model and of the current one
        :param force_reset: Force a call to ``reset()`` before training (see SB3)
        :param restore_rng_state: Restore the global random generators to their state at save time
        :param kwargs: Attributes to change on loading
        :return: The model
        """
        late = {name: kwargs.pop(name) for name in cls.load_time_kwargs if name in kwargs}
        try:
            model = super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)  # type: ignore[arg-type]
        except FileNotFoundError:
            raise
        except IncompatiblePolicyError as error:
            raise ValueError(f"Cannot load {path} as a {cls.__name__} model: {error}") from error
        except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as error:
            raise ValueError(
                f"Cannot load a {cls.__name__} model from {path}: truncated or not a model zip ({error})"
            ) from error
        except KeyError as error:
            raise ValueError(f"Cannot load a {cls.__name__} model from {path}: the saved data has no {error}") from error
        except RuntimeError as error:
            raise ValueError(
                f"Cannot load a {cls.__name__} model from {path}: its parameters do not fit the networks its saved "
                f"arguments describe, or a parameter file inside the zip is damaged ({error})"
            ) from error
        states = model.__dict__.pop("_rng_states", None)
        if restore_rng_state:
            if states is None:
                raise ValueError(f"{path} holds no random generator states (it was not saved by {cls.__name__}.save)")
            restore_rng_states(states, getattr(model, "action_space", None))
        model._apply_load_kwargs(late)
        return model

    def _apply_load_kwargs(self, kwargs: dict[str, Any]) -> None:
        """
        :param kwargs: The ``load`` keyword arguments named in ``load_time_kwargs`` that were given
        """

    def save_replay_buffer(self, path: "str | os.PathLike[str] | io.BufferedIOBase") -> None:
        """
        Save the replay buffer as a pickle file, atomically when ``path`` is a path.

        :param path: Where to save it
        """
        if isinstance(path, io.BufferedIOBase):
            super().save_replay_buffer(path)  # type: ignore[misc]
        else:
            atomic_write(path, lambda tmp: super(SaveLoadMixin, self).save_replay_buffer(tmp), "pkl")  # type: ignore[misc]

    def load_replay_buffer(self, path: "str | os.PathLike[str] | io.BufferedIOBase", truncate_last_traj: bool = True) -> None:
        """
        Load a replay buffer saved with ``save_replay_buffer``. **Loading unpickles code: only load files you trust.**

        :param path: The file
        :param truncate_last_traj: See SB3 (``HerReplayBuffer`` only)
        """
        try:
            super().load_replay_buffer(path, truncate_last_traj)  # type: ignore[misc]
        except FileNotFoundError:
            raise
        except (EOFError, pickle.UnpicklingError, AssertionError, AttributeError, ValueError) as error:
            raise ValueError(f"Cannot load a replay buffer from {path}: truncated or not a replay buffer ({error})") from error

    @classmethod
    def load_latest_checkpoint(
        cls: type[SelfSaveLoad], save_path: "str | os.PathLike[str]", env: GymEnv | None = None, **kwargs: Any
    ) -> SelfSaveLoad:
        """
        Resume from the latest checkpoint written by :class:`KeepLastCheckpointCallback`: model, replay buffer and
        VecNormalize statistics. Continue with ``learn(..., reset_num_timesteps=False)``.

        :param save_path: Folder of the checkpoints
        :param env: Environment to continue on
        :param kwargs: Passed to ``load`` (``restore_rng_state`` is True unless given: an exact resume)
        :return: The model
        """
        kwargs.setdefault("restore_rng_state", True)
        return load_latest_checkpoint(cls, save_path, env, **kwargs)  # type: ignore[arg-type]

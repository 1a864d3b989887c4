"""
Checkpoints that lose nothing: crash-safe writes, random generator states, and a callback that keeps the last K
checkpoints (model + replay buffer + VecNormalize statistics) and resumes in one call.

A file is always written to a temporary file in the same folder and renamed over the target (``os.replace`` is
atomic on POSIX), so a process killed mid-save leaves the previous file intact. A checkpoint's files are listed in a
manifest written last, so a checkpoint is either complete or ignored.
"""

import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

MANIFEST = "checkpoints.json"


def _final_path(path: "str | os.PathLike[str]", suffix: str) -> Path:
    final = Path(path)
    # SB3 appends the suffix to a path without one: do the same so the renamed file is where SB3 would write it
    return final.with_suffix(f".{suffix}") if final.suffix == "" else final


def atomic_write(path: "str | os.PathLike[str]", write: Callable[[str], None], suffix: str) -> Path:
    """
    Write a file through a temporary file and an atomic rename.

    :param path: Destination (``suffix`` is appended when it has none, as SB3 does)
    :param write: Function that writes the file at the path it is given
    :param suffix: File suffix without the dot (``"zip"``, ``"pkl"``)
    :return: The final path
    """
    final = _final_path(path, suffix)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.{os.getpid()}.tmp.{suffix}")
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

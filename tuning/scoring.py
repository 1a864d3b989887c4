"""
Normalised scores: a uniform random policy scores 0 and the reference score 1, so environments with very
different return scales can be averaged in one objective.

The table lives in ``tuning/reference_scores.yml`` (with sources). ``python -m tuning.scoring ENV...`` measures the
random-policy returns that the table records.
"""

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

DEFAULT_REFERENCE_FILE = Path(__file__).with_name("reference_scores.yml")


class MissingReferenceError(ValueError):
    """An environment has no entry in the reference table, so its scores cannot be normalised."""


@dataclass(frozen=True)
class ReferenceScore:
    """
    Returns that map to normalised scores 0 and 1 for one environment.

    :param random: mean return of a uniform random policy (normalised score 0)
    :param reference: mean return of the reference agent (normalised score 1)
    """

    random: float
    reference: float

    def normalise(self, episode_return: float) -> float:
        """
        :param episode_return: a mean episodic return on this environment
        :return: ``(episode_return - random) / (reference - random)``
        """
        return (episode_return - self.random) / (self.reference - self.random)


def load_reference_scores(path: str | Path | None = None) -> dict[str, ReferenceScore]:
    """
    Read a reference table (``yaml.safe_load``; each entry needs ``random`` and ``reference``).

    :param path: YAML file; ``None`` reads the committed ``tuning/reference_scores.yml``
    :return: reference scores keyed by environment id
    """
    path = Path(path) if path is not None else DEFAULT_REFERENCE_FILE
    with open(path, encoding="utf-8") as file:
        data = yaml.safe_load(file) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of environment ids, got {type(data).__name__}")
    return {env_id: _parse_entry(env_id, entry, path) for env_id, entry in data.items()}


def _parse_entry(env_id: str, entry: object, path: Path) -> ReferenceScore:
    if not isinstance(entry, dict) or "random" not in entry or "reference" not in entry:
        raise ValueError(f"{path}: entry {env_id!r} needs numeric 'random' and 'reference' fields")
    score = ReferenceScore(random=float(entry["random"]), reference=float(entry["reference"]))
    if not (math.isfinite(score.random) and math.isfinite(score.reference)) or score.reference == score.random:
        raise ValueError(f"{path}: entry {env_id!r} needs finite, distinct 'random' and 'reference' values")
    return score


def select_reference_scores(env_ids: Sequence[str], table: Mapping[str, ReferenceScore]) -> dict[str, ReferenceScore]:
    """
    Pick the entries of ``env_ids``; a missing one is an error (an env without reference cannot be averaged).

    :param env_ids: environments of a study
    :param table: reference table from :func:`load_reference_scores`
    :return: ``{env_id: ReferenceScore}`` for exactly ``env_ids``
    """
    missing = [env_id for env_id in env_ids if env_id not in table]
    if missing:
        raise MissingReferenceError(
            f"no reference score for {', '.join(missing)}: add random/reference returns to "
            f"{DEFAULT_REFERENCE_FILE.name} or pass --references FILE"
        )
    return {env_id: table[env_id] for env_id in env_ids}


def measure_random_score(env_id: str, n_episodes: int = 20, seed: int = 0) -> tuple[float, float]:
    """
    Mean and std of the episodic return of a uniform random policy.

    :param env_id: Gymnasium id (PyBullet ids are registered on demand)
    :param n_episodes: number of episodes
    :param seed: seed of the first reset and of the action space
    :return: ``(mean, std)`` of the returns
    """
    # Imported here so that reading the table does not import gymnasium/pybullet.
    from sb3_ddpg_plus.experiments.envs import make_env

    env = make_env(env_id)
    try:
        env.action_space.seed(seed)
        returns = []
        for episode in range(n_episodes):
            env.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return float(np.mean(returns)), float(np.std(returns))


def main(argv: Sequence[str] | None = None) -> None:
    """Print the random-policy returns of some environments as YAML (the ``random`` fields of the table)."""
    parser = argparse.ArgumentParser(prog="python -m tuning.scoring", description=main.__doc__)
    parser.add_argument("env_ids", nargs="+", metavar="ENV", help="Gymnasium environment ids")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per environment (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: 0)")
    args = parser.parse_args(argv)
    for env_id in args.env_ids:
        mean, std = measure_random_score(env_id, n_episodes=args.episodes, seed=args.seed)
        print(
            yaml.safe_dump({env_id: {"random": round(mean, 3), "random_std": round(std, 3), "random_episodes": args.episodes}})
        )


if __name__ == "__main__":
    main()

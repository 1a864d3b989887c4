"""
What a study measures, stored once in the study (user attribute ``"config"``) so every worker, on any machine,
rebuilds the same objective and the report re-trains under the same conditions.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sb3_ddpg_plus.experiments.search_space import NET_ARCHS, SEARCH_SPACE_VERSION
from tuning.scoring import ReferenceScore

CONFIG_ATTR = "config"


class StudyConfigError(ValueError):
    """A worker's settings do not match the study it joins, or a setting is invalid."""


@dataclass(frozen=True)
class StudyConfig:
    """
    :param env_ids: environments, trained in this order within a trial (put cheap ones first: pruning sees them first)
    :param budget: training timesteps per (environment, seed) run; also what bounds the sampled ``buffer_size`` and
        ``learning_starts`` (see :mod:`sb3_ddpg_plus.experiments.search_space`)
    :param env_budgets: ``{env_id: timesteps}`` for environments trained for another number of timesteps than
        ``budget`` (a cross-task study gives cheap tasks what they need and costly ones what they can afford)
    :param seeds_per_trial: training seeds per environment in each trial
    :param eval_freq: timesteps between evaluations of a run of ``budget`` timesteps (also the step grid of Optuna
        reports); a run of another budget evaluates in proportion, so every run has the same number of evaluations
    :param eval_episodes: deterministic episodes per evaluation
    :param score_window: a run's score is the mean of its last ``score_window`` evaluations
    :param prune_warmup: pruning waits ``prune_warmup * budget`` timesteps past ``learning_starts`` in each run
    :param floor: a normalised running score below this (after warm-up) prunes the trial as diverged
    :param references: ``{env_id: {"random": R0, "reference": R1}}`` used for normalisation
    :param net_archs: network sizes the search may use (names of ``NET_ARCHS`` in
        :mod:`sb3_ddpg_plus.experiments.search_space`)
    :param search_space_version: ``SEARCH_SPACE_VERSION`` of the space that sampled it (same module)
    """

    env_ids: tuple[str, ...]
    budget: int
    env_budgets: dict[str, int] = field(default_factory=dict)
    seeds_per_trial: int = 1
    eval_freq: int = 0
    eval_episodes: int = 5
    score_window: int = 3
    prune_warmup: float = 0.25
    floor: float = -1.0
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    net_archs: tuple[str, ...] = tuple(NET_ARCHS)
    search_space_version: int = SEARCH_SPACE_VERSION

    def __post_init__(self) -> None:
        if not self.env_ids:
            raise StudyConfigError("at least one environment is needed")
        if len(set(self.env_ids)) != len(self.env_ids):
            raise StudyConfigError(f"environments repeat: {list(self.env_ids)}")
        for name in ("budget", "seeds_per_trial", "eval_episodes", "score_window"):
            if getattr(self, name) < 1:
                raise StudyConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_freq == 0:
            # Five evaluations per run: enough points for pruning and the score window, few enough to stay cheap.
            object.__setattr__(self, "eval_freq", max(1, self.budget // 5))
        if not 1 <= self.eval_freq <= self.budget:
            raise StudyConfigError(f"eval_freq must be in [1, budget={self.budget}], got {self.eval_freq}")
        strays = sorted(set(self.env_budgets) - set(self.env_ids))
        if strays:
            raise StudyConfigError(f"budgets given for environments the study does not train: {strays}")
        for env_id, steps in self.env_budgets.items():
            if not isinstance(steps, int) or steps < 1:
                raise StudyConfigError(f"the budget of {env_id} must be an integer >= 1, got {steps!r}")
        if not 0.0 <= self.prune_warmup <= 1.0:
            raise StudyConfigError(f"prune_warmup must be in [0, 1], got {self.prune_warmup}")
        unknown = [name for name in self.net_archs if name not in NET_ARCHS]
        if not self.net_archs or unknown:
            raise StudyConfigError(f"net_archs must be a non-empty subset of {list(NET_ARCHS)}, got {list(self.net_archs)}")
        missing = [env_id for env_id in self.env_ids if env_id not in self.references]
        if missing:
            raise StudyConfigError(f"no reference score for {', '.join(missing)}")

    def reference(self, env_id: str) -> ReferenceScore:
        """
        :param env_id: one of :attr:`env_ids`
        :return: its normalisation
        """
        entry = self.references[env_id]
        return ReferenceScore(random=float(entry["random"]), reference=float(entry["reference"]))

    def budget_for(self, env_id: str) -> int:
        """
        :param env_id: one of :attr:`env_ids`
        :return: training timesteps of its runs
        """
        return int(self.env_budgets.get(env_id, self.budget))

    def eval_freq_for(self, env_id: str) -> int:
        """
        :param env_id: one of :attr:`env_ids`
        :return: timesteps between its evaluations (:attr:`eval_freq` scaled to its budget)
        """
        return max(1, self.eval_freq * self.budget_for(env_id) // self.budget)

    def to_dict(self) -> dict[str, Any]:
        """:return: JSON-serialisable form (what the study stores)"""
        data = asdict(self)
        data["env_ids"] = list(self.env_ids)
        data["net_archs"] = list(self.net_archs)
        data["env_budgets"] = dict(self.env_budgets)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StudyConfig":
        """
        :param data: output of :meth:`to_dict`
        :return: the configuration
        """
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["env_ids"] = tuple(values["env_ids"])
        values["env_budgets"] = dict(values.get("env_budgets") or {})
        if "net_archs" in values:
            values["net_archs"] = tuple(values["net_archs"])
        return cls(**values)

    def mismatches(self, other: "StudyConfig") -> list[str]:
        """
        :param other: the configuration a study was created with
        :return: one ``"name: ours != theirs"`` line per differing setting (empty if they agree)
        """
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{name}: {mine[name]!r} != {theirs[name]!r} (study)" for name in mine if mine[name] != theirs[name]]

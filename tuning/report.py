"""
``python -m tuning report``: everything under ``runs/NAME/`` that a reader needs to trust (or distrust) a study.

* ``best.yml`` and ``trials.csv`` (see :mod:`tuning.export`);
* ``optimization_history.png``, ``param_importances.png``, ``intermediate_values.png`` (matplotlib);
* ``REPORT.md``: the top configurations re-trained with fresh seeds (never used by the search) under the same
  protocol (:mod:`sb3_ddpg_plus.experiments.protocol`), per-env mean ± std of the raw return, and the IQM of the
  normalised scores with a 95 % stratified bootstrap interval (:mod:`sb3_ddpg_plus.experiments.stats`).
  A configuration picked as the maximum of many noisy trials looks better than it is; the re-training shows by how
  much (rl-zoo3 issues #86, #314, #458).
"""

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from sb3_ddpg_plus.experiments.protocol import train_and_evaluate
from sb3_ddpg_plus.experiments.records import write_file
from sb3_ddpg_plus.experiments.stats import N_RESAMPLES, iqm, mean_std, stratified_bootstrap_ci
from tuning.config import StudyConfig
from tuning.export import completed_trials, export_best, trial_hyperparams, write_trials_csv
from tuning.study import state_counts

logger = logging.getLogger(__name__)

# Re-training seeds start far above any tuning seed (trial_number * seeds_per_trial + i), so they are fresh.
REEVAL_SEED_BASE = 1 << 30


@dataclass
class Reevaluation:
    """
    Re-training results of one configuration.

    :param trial_number: the trial it comes from
    :param search_value: its objective value during the search
    :param returns: raw scores, ``{env_id: [one per seed]}``
    :param normalised: normalised scores, shape ``(n_seeds, n_envs)``
    """

    trial_number: int
    search_value: float
    returns: dict[str, list[float]]
    normalised: np.ndarray


def reevaluate(
    study: optuna.Study, config: StudyConfig, top_k: int, n_seeds: int, budget: int | None = None
) -> list[Reevaluation]:
    """
    Re-train the ``top_k`` best completed configurations with ``n_seeds`` fresh seeds on every environment.

    :param study: the study
    :param config: its settings (same evaluation grid and score window as the search)
    :param top_k: number of configurations
    :param n_seeds: fresh seeds per environment
    :param budget: timesteps per run (default: the study's budget of each environment)
    :return: one result per configuration, best search value first
    """
    seeds = [REEVAL_SEED_BASE + index for index in range(n_seeds)]
    results = []
    for trial in completed_trials(study)[:top_k]:
        hyperparams = trial_hyperparams(trial, config)
        returns: dict[str, list[float]] = {}
        for env_id in config.env_ids:
            returns[env_id] = []
            env_budget = budget or config.budget_for(env_id)
            for seed in seeds:
                logger.info("re-training trial %d on %s, seed %d (%d steps)", trial.number, env_id, seed, env_budget)
                result = train_and_evaluate(
                    hyperparams,
                    env_id,
                    seed,
                    budget=env_budget,
                    eval_freq=min(config.eval_freq_for(env_id), env_budget),
                    n_eval_episodes=config.eval_episodes,
                )
                returns[env_id].append(result.score(config.score_window, after=int(hyperparams["learning_starts"])))
        normalised = np.array(
            [[config.reference(env_id).normalise(returns[env_id][i]) for env_id in config.env_ids] for i in range(n_seeds)]
        )
        results.append(Reevaluation(trial.number, float(trial.value), returns, normalised))  # type: ignore[arg-type]
    return results


def _save_plot(plot: Callable[[], object], path: Path) -> str | None:
    """Draw with an ``optuna.visualization.matplotlib`` function and save it; return why it failed, if it did."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers/CI
    import matplotlib.pyplot as plt

    try:
        with warnings.catch_warnings():
            # The matplotlib backend of optuna.visualization is flagged experimental.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # PED-ANOVA warns about sparse regimes on small studies; the plot is still the best estimate we have.
            warnings.simplefilter("ignore", UserWarning)
            axes = plot()
        figure = axes.flat[0].figure if isinstance(axes, np.ndarray) else axes.figure  # type: ignore[attr-defined]
        figure.savefig(path, dpi=110, bbox_inches="tight")
        return None
    except Exception as error:  # plotting is best-effort: a study with 1 trial has no importances
        return f"{type(error).__name__}: {error}"
    finally:
        plt.close("all")


def write_plots(study: optuna.Study, out_dir: Path) -> dict[str, str | None]:
    """
    :param study: the study
    :param out_dir: folder of the PNG files
    :return: ``{file name: None if written, else the reason it was skipped}``
    """
    from optuna.visualization import matplotlib as optuna_plt

    plots = {
        "optimization_history.png": lambda: optuna_plt.plot_optimization_history(study),
        "param_importances.png": lambda: optuna_plt.plot_param_importances(study),
        "intermediate_values.png": lambda: optuna_plt.plot_intermediate_values(study),
    }
    return {name: _save_plot(plot, out_dir / name) for name, plot in plots.items()}


def _trial_returns(trial: optuna.trial.FrozenTrial, env_id: str) -> list[float]:
    """Raw scores of a trial on one env, one per seed."""
    if f"return/{env_id}" in trial.user_attrs:
        return list(trial.user_attrs[f"return/{env_id}"])
    # Early studies (before trials.csv got one column per env) stored one attribute per seed: "return/ENV/seedN".
    return [value for key, value in trial.user_attrs.items() if key.startswith(f"return/{env_id}/")]


def _budgets(config: StudyConfig) -> str:
    return ", ".join(f"{env_id} {config.budget_for(env_id)}" for env_id in config.env_ids)


def _fmt(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"


def render_report(
    study: optuna.Study,
    config: StudyConfig,
    reevaluations: list[Reevaluation],
    plots: dict[str, str | None],
    n_seeds: int,
    budget: int | None,
) -> str:
    """
    :param study: the study
    :param config: its settings
    :param reevaluations: output of :func:`reevaluate`
    :param plots: output of :func:`write_plots`
    :param n_seeds: fresh seeds per environment used for re-training
    :param budget: re-training timesteps per run (``None``: the study's budget of each environment)
    :return: REPORT.md text
    """
    counts = state_counts(study)
    lines = [
        f"# Tuning report: study `{study.study_name}`",
        "",
        f"- environments and timesteps per run: {_budgets(config)}; "
        f"{config.seeds_per_trial} seed(s) per environment per trial",
        f"- trials: {sum(counts.values())} ({', '.join(f'{n} {s.lower()}' for s, n in sorted(counts.items()))})",
        f"- objective: mean normalised score (0 = uniform random policy, 1 = rl-zoo3's tuned DDPG at full budget; "
        f"`tuning/reference_scores.yml`), each run scored as the mean of its last {config.score_window} evaluations "
        f"of {config.eval_episodes} episodes",
        f"- command of the first worker: `{study.user_attrs.get('command', 'unknown')}`",
        f"- versions: {study.user_attrs.get('versions', {})}",
        "",
        "## Top trials in the search",
        "",
        "| trial | value | " + " | ".join(config.env_ids) + " |",
        "|---|---|" + "---|" * len(config.env_ids),
    ]
    for trial in completed_trials(study)[:10]:
        cells = []
        for env_id in config.env_ids:
            raw = _trial_returns(trial, env_id)
            cells.append(_fmt(float(np.mean(raw))) if raw else "")
        lines.append(f"| {trial.number} | {trial.value:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "Raw returns in the table are means over the trial's seeds.", ""]

    lines += ["## Re-training with fresh seeds", ""]
    if not reevaluations:
        lines += ["Not run (`--top-k 0` or no completed trial).", ""]
    else:
        lines += [
            f"Each configuration re-trained with {n_seeds} fresh seed(s) per environment for "
            f"{budget if budget else 'the study budget of each environment'} timesteps. "
            "Raw returns: mean ± std over seeds. Normalised: IQM over all (seed, environment) scores with a 95 % "
            f"stratified bootstrap interval ({N_RESAMPLES:,} resamples), and the mean for comparison with the search value.",
            "",
            "| trial | search value | "
            + " | ".join(f"{env_id} return" for env_id in config.env_ids)
            + " | normalised mean | normalised IQM [95 % CI] |",
            "|---|---|" + "---|" * len(config.env_ids) + "---|---|",
        ]
        for item in reevaluations:
            cells = []
            for env_id in config.env_ids:
                mean, std = mean_std(np.array(item.returns[env_id]))
                cells.append(f"{_fmt(mean)} ± {_fmt(std)}")
            # One column per environment: the bootstrap resamples seeds within each environment.
            point, low, high = stratified_bootstrap_ci(list(item.normalised.T), iqm)
            lines.append(
                f"| {item.trial_number} | {item.search_value:.3f} | "
                + " | ".join(cells)
                + f" | {float(item.normalised.mean()):.3f} | {point:.3f} [{low:.3f}, {high:.3f}] |"
            )
        lines += [
            "",
            "With few seeds the interval is wide, and with fewer than 4 scores nothing is trimmed (the IQM is the mean). "
            "The search value is optimistic: it is the maximum over noisy trials.",
            "",
        ]

    lines += [
        "## Files",
        "",
        "- `best.yml`: best configuration (`sb3_ddpg_plus.hyperparams.load_hyperparams(path, env_id)`)",
        "- `trials.csv`: every trial, its params, seeds, worker and per-env returns",
    ]
    for name, problem in plots.items():
        lines.append(f"- `{name}`" + (f": not drawn ({problem})" if problem else ""))
    return "\n".join(lines) + "\n"


def write_report(
    study: optuna.Study, config: StudyConfig, out_dir: str | Path, top_k: int = 3, n_seeds: int = 5, budget: int | None = None
) -> Path:
    """
    Write ``best.yml``, ``trials.csv``, the plots and ``REPORT.md`` into ``out_dir``.

    :param study: the study
    :param config: its settings
    :param out_dir: output folder (``runs/NAME``)
    :param top_k: configurations to re-train (0 skips re-training)
    :param n_seeds: fresh seeds per environment for re-training
    :param budget: re-training timesteps per run (default: the study's budget of each environment)
    :return: path of REPORT.md
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_trials_csv(study, out_dir / "trials.csv")
    if completed_trials(study):
        export_best(study, config, out_dir / "best.yml")
    plots = write_plots(study, out_dir)
    reevaluations = reevaluate(study, config, top_k, n_seeds, budget) if top_k > 0 else []
    path = out_dir / "REPORT.md"
    write_file(path, render_report(study, config, reevaluations, plots, n_seeds, budget))
    return path

"""
Tests of the experiment core (``sb3_ddpg_plus.experiments``) shared by ``tuning/`` and ``benchmarks/``: statistics,
rl-zoo3's hyperparameters read without ``eval``, the train-and-evaluate protocol, system information and atomic writes.
The search space is tested in ``test_tuning_search_space.py`` and through the zoo in ``test_zoo.py``.
"""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats  # the dev extra's reference: a missing scipy fails instead of skipping

from sb3_ddpg_plus.experiments import stats
from sb3_ddpg_plus.experiments.protocol import EVAL_SEED_OFFSET, TrainingResult, train_and_evaluate
from sb3_ddpg_plus.experiments.records import system_info, write_file, write_json
from sb3_ddpg_plus.experiments.zoo_hyperparams import parse_kwargs, zoo_hyperparams

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


# ---------------------------------------------------------------------------------------------------------------- stats
@pytest.mark.parametrize(
    "scores, expected",
    [
        ([3.0], 3.0),
        ([1.0, 2.0, 9.0], 4.0),  # n < 4: nothing is cut, plain mean
        ([1.0, 2.0, 3.0, 100.0], 2.5),  # one cut at each end
        ([8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0], 4.5),  # unsorted input, two cut at each end
        ([-5.0, 0.0, 1.0, 2.0, 50.0], 1.0),  # n=5: floor(1.25)=1 cut at each end
        ([-100.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 100.0], 2.5),  # 8 values: the 2 lowest and 2 highest are dropped
    ],
)
def test_iqm_known_values(scores, expected):
    assert stats.iqm(scores) == pytest.approx(expected)


def test_iqm_is_scipy_trim_mean_over_all_scores_or_an_axis():
    rng = np.random.default_rng(0)
    for n in range(1, 30):
        x = rng.normal(size=n)
        assert stats.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))
    matrix = rng.normal(size=(37, 2))  # (runs, tasks): rliable pools every score
    assert stats.iqm(matrix) == pytest.approx(scipy_stats.trim_mean(matrix, 0.25, axis=None))
    assert stats.iqm(matrix, axis=0) == pytest.approx(scipy_stats.trim_mean(matrix, 0.25, axis=0))
    with pytest.raises(ValueError, match="empty"):
        stats.iqm([])


def test_mean_std_population_or_sample():
    assert stats.mean_std([1.0, 3.0]) == (2.0, 1.0)  # ddof=0, as evaluate_policy reports
    assert stats.mean_std([1.0, 3.0], ddof=1) == pytest.approx((2.0, np.sqrt(2.0)))
    assert stats.mean_std([5.0], ddof=1) == (5.0, 0.0)
    with pytest.raises(ValueError):
        stats.mean_std([])


def test_bootstrap_ci_matches_brute_force_enumeration():
    # With 4 runs there are 4**4 equally likely resamples: the exact bootstrap distribution of the IQM.
    x = np.array([0.0, 1.0, 3.0, 10.0])
    exact = np.array([stats.iqm(x[list(idx)]) for idx in itertools.product(range(4), repeat=4)])
    exact_low, exact_high = np.percentile(exact, [2.5, 97.5])
    point, low, high = stats.stratified_bootstrap_ci([x], n_resamples=100_000, seed=1)
    assert point == pytest.approx(stats.iqm(x))
    assert low == pytest.approx(exact_low, abs=0.05)
    assert high == pytest.approx(exact_high, abs=0.05)


def test_bootstrap_ci_is_stratified_by_task():
    # Task A has three 0s, task B one 1: a stratified resample always holds three 0s and one 1, so the mean of every
    # resample is exactly 0.25 (pooled resampling would vary). A task with one run is fine (scipy's bootstrap refuses).
    assert stats.stratified_bootstrap_ci([[0.0, 0.0, 0.0], [1.0]], np.mean, n_resamples=500) == pytest.approx((0.25,) * 3)
    scores = np.column_stack([np.zeros(6), np.ones(6)])  # (runs, tasks): task 0 always 0, task 1 always 1
    assert stats.stratified_bootstrap_ci(list(scores.T), np.mean, n_resamples=200) == (0.5, 0.5, 0.5)


def test_bootstrap_ci_constant_reproducible_and_ordered():
    assert stats.stratified_bootstrap_ci([[7.0] * 5]) == pytest.approx((7.0, 7.0, 7.0))
    x = np.random.default_rng(3).normal(size=6)
    assert stats.stratified_bootstrap_ci([x], seed=5) == stats.stratified_bootstrap_ci([x], seed=5)
    point, low, high = stats.stratified_bootstrap_ci([x])
    assert low <= point <= high and high - low > 0
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci([np.empty(0)])
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci([x], confidence=1.5)


def test_bootstrap_ci_of_learning_curves_is_per_point():
    values = np.random.default_rng(0).normal(size=(5, 4))  # (runs, points of a curve)
    mean, low, high = stats.stratified_bootstrap_ci([values], np.mean)
    assert mean == pytest.approx(values.mean(axis=0)) and mean.shape == (4,)
    assert np.all(low <= mean) and np.all(mean <= high)


def test_probability_of_improvement_known_values():
    assert stats.probability_of_improvement([[2.0, 3.0]], [[0.0, 1.0]]) == 1.0
    assert stats.probability_of_improvement([[0.0, 1.0]], [[2.0, 3.0]]) == 0.0
    assert stats.probability_of_improvement([[1.0]], [[1.0]]) == 0.5  # a tie counts half
    assert stats.probability_of_improvement([[1.0, 2.0]], [[1.5]]) == 0.5
    # Averaged over tasks: 1.0 on the first, 0.0 on the second.
    assert stats.probability_of_improvement([[1.0], [0.0]], [[0.0], [1.0]]) == 0.5


def test_probability_of_improvement_matches_pairwise_loop():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, size=5).astype(float), rng.integers(0, 4, size=7).astype(float)  # integers: ties occur
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y])
    assert stats.probability_of_improvement([x], [y]) == pytest.approx(brute)
    point, low, high = stats.probability_of_improvement_ci([x], [y], n_resamples=500)
    assert point == pytest.approx(brute)
    assert 0.0 <= low <= point <= high <= 1.0
    with pytest.raises(ValueError):
        stats.probability_of_improvement([[1.0]], [[1.0], [2.0]])


def test_interval_monte_carlo_error_is_small_at_the_default_resamples():
    # The spread of an interval end over resampling seeds, relative to the interval's width (quoted in the module).
    x = np.random.default_rng(7).normal(size=5)
    ends = np.array([stats.stratified_bootstrap_ci([x], seed=seed)[1:] for seed in range(20)])
    width = float(np.mean(ends[:, 1] - ends[:, 0]))
    assert ends.std(axis=0).max() < 0.02 * width


# ------------------------------------------------------------------------------------------ rl-zoo3 hyperparameters
def test_zoo_hyperparams_are_read_from_the_installed_files():
    pytest.importorskip("rl_zoo3")
    pendulum = zoo_hyperparams("Pendulum-v1")
    assert pendulum == {
        "n_timesteps": 20_000,
        "policy": "MlpPolicy",
        "gamma": 0.98,
        "buffer_size": 200_000,
        "learning_starts": 10_000,
        "action_noise": {"type": "normal", "sigma": 0.1},
        "gradient_steps": 1,
        "train_freq": 1,
        "learning_rate": 1e-3,
        "policy_kwargs": {"net_arch": [400, 300]},  # "dict(net_arch=[400, 300])" in the file, parsed, not evaluated
    }
    assert zoo_hyperparams("MountainCarContinuous-v0")["action_noise"] == {"type": "ornstein-uhlenbeck", "sigma": 0.5}
    assert zoo_hyperparams("HopperBulletEnv-v0")["learning_rate"] == 7e-4  # through the file's YAML merge key
    assert zoo_hyperparams("NotInTheZoo-v0") == zoo_hyperparams("NotInTheZoo-v1", "td3")  # the "default" entries
    for env_id in ("Pendulum-v1", "MountainCarContinuous-v0", "HalfCheetahBulletEnv-v0", "HopperBulletEnv-v0"):
        # The benchmarks compare DDPG and TD3 at the zoo's settings, which are the same for these envs.
        assert zoo_hyperparams(env_id, "ddpg") == zoo_hyperparams(env_id, "td3"), env_id
    pendulum["gamma"] = 0.5
    assert zoo_hyperparams("Pendulum-v1")["gamma"] == 0.98  # a copy each time


def test_committed_benchmark_runs_used_the_zoo_hyperparameters_read_now():
    # Every committed zoo-based run recorded its hyperparameters: reading the zoo's files gives them back exactly, so
    # the committed results are regenerable from the installed rl-zoo3.
    pytest.importorskip("rl_zoo3")
    from benchmarks.algos import ALGOS, deep_merge, hyperparams_for
    from sb3_ddpg_plus.hyperparams import move_policy_options

    checked = 0
    folders = [RESULTS / "standard", RESULTS / "retired" / "standard-pybullet-10k", RESULTS / "evidence"]
    for path in sorted(path for folder in folders for path in (folder / "runs").rglob("*.json")):
        run = json.loads(path.read_text())
        if run["algo"] not in ALGOS or ALGOS[run["algo"]].tuned:
            continue
        expected = deep_merge(hyperparams_for(run["algo"], run["env"], run["budget"]), run["overrides"])
        # Records written before n_critics became a policy option hold it at the top level: the same configuration
        assert move_policy_options(expected) == move_policy_options(run["hyperparams"]), path
        checked += 1
    assert checked >= 150


@pytest.mark.parametrize(
    "text",
    [
        "dict(net_arch=__import__('os').system('true'))",  # a call
        "dict(activation_fn=nn.ReLU)",  # a name: rl-zoo3 would evaluate it
        "os.system('true')",
        "dict(**other)",
        "[400, 300]",
        "dict(net_arch=[400, 300]",  # not Python
    ],
)
def test_zoo_strings_are_parsed_never_evaluated(text):
    with pytest.raises(ValueError):
        parse_kwargs(text)


def test_zoo_strings_literal_forms():
    assert parse_kwargs("dict(net_arch=[400, 300])") == {"net_arch": [400, 300]}
    assert parse_kwargs(" {'net_arch': {'pi': [64], 'qf': [64]}}") == {"net_arch": {"pi": [64], "qf": [64]}}
    assert parse_kwargs("dict(norm_obs=True, norm_reward=False, gamma=0.99)") == {
        "norm_obs": True,
        "norm_reward": False,
        "gamma": 0.99,
    }


# ------------------------------------------------------------------------------------------------------------ protocol
_TINY = {
    "policy": "MlpPolicy",
    "learning_starts": 20,
    "batch_size": 16,
    "buffer_size": 500,
    "policy_kwargs": {"net_arch": [8]},
    "action_noise": {"type": "normal", "sigma": 0.1},
}


def test_protocol_grid_from_step_zero_to_the_final_model():
    # train_freq 64 makes SB3 collect past the budget (250 -> 256): evaluations at 0, on the grid, and of the final
    # model (past the budget), never twice at one timestep.
    seen = []
    result = train_and_evaluate(
        {**_TINY, "train_freq": 64, "gradient_steps": 8},
        "Pendulum-v1",
        seed=0,
        budget=250,
        eval_freq=100,
        n_eval_episodes=1,
        on_evaluation=lambda r: seen.append(r.timesteps[-1]),
    )
    assert result.timesteps == seen == [0, 100, 200, 256] and result.num_timesteps == 256
    assert len(result.returns) == 4 and all(len(returns) == 1 for returns in result.returns)
    assert result.train_s[0] == 0.0 and result.train_s == sorted(result.train_s) and 0 < result.eval_s < result.wall_s
    assert result.model is None  # not kept unless asked
    # The score: mean of the last `window` evaluations at or after `after` (all of them when none is left).
    assert result.score() == result.mean_returns[-1]
    assert result.score(window=2) == pytest.approx(np.mean(result.mean_returns[-2:]))
    assert result.score(window=3, after=150) == pytest.approx(np.mean(result.mean_returns[2:]))
    assert result.score(window=2, after=10_000) == pytest.approx(np.mean(result.mean_returns[-2:]))
    assert np.isnan(TrainingResult().score())


def test_protocol_is_reproducible_and_the_hook_can_stop_training():
    def run(**kwargs):
        return train_and_evaluate(_TINY, "Pendulum-v1", seed=3, budget=120, eval_freq=40, n_eval_episodes=1, **kwargs)

    first, second = run(keep_model=True), run()
    assert first.returns == second.returns and first.episode_returns == second.episode_returns
    assert first.model is not None and first.model.num_timesteps == 120
    stopped = run(on_evaluation=lambda r: r.timesteps[-1] < 40)  # False after the evaluation at 40: stop there
    assert stopped.timesteps == [0, 40] and stopped.num_timesteps == 40


def test_protocol_evaluation_env_is_seeded_apart_and_normalisation_synced():
    assert EVAL_SEED_OFFSET == 10_000  # recorded as eval.env_seed in benchmark run files
    result = train_and_evaluate(
        {**_TINY, "normalize": {"norm_obs": True, "norm_reward": True}, "n_envs": 2},
        "Pendulum-v1",
        seed=0,
        budget=100,
        eval_freq=50,
        n_eval_episodes=1,
        keep_model=True,
    )
    # two envs: timesteps advance by 2 per call; the grid is in timesteps, not calls
    assert result.timesteps == [0, 50, 100]
    # rewards normalised for training only: the evaluation reports true returns (Pendulum's are below -1 per step)
    assert all(returns[0] < -100 for returns in result.returns)
    assert result.model is not None and result.model.get_vec_normalize_env() is not None


# ---------------------------------------------------------------------------------------------- records and writes
def test_system_info_is_sb3s_plus_cpu_and_packages():
    info = system_info(packages=("numpy", "no-such-distribution"))
    versions, machine = info["versions"], info["machine"]
    assert versions["Stable-Baselines3"] != "-" and versions["PyTorch"] and versions["sb3_ddpg_plus"]
    assert versions["no-such-distribution"] == "-" and "OS" not in versions
    assert machine["logical_cores"] >= 1 and machine["cpu_model"] and machine["platform"]
    json.dumps(info)  # recorded in JSON result files


def test_writes_are_atomic_and_leave_nothing_behind(tmp_path):
    write_json(tmp_path / "a" / "run.json", {"x": 1})
    assert json.loads((tmp_path / "a" / "run.json").read_text()) == {"x": 1}
    write_file(tmp_path / "a" / "run.json", "replaced\n")
    write_file(tmp_path / "b.png", b"\x89PNG")
    write_file(tmp_path / "no_suffix", "kept as named")
    assert (tmp_path / "a" / "run.json").read_text() == "replaced\n" and (tmp_path / "b.png").read_bytes() == b"\x89PNG"
    assert (tmp_path / "no_suffix").read_text() == "kept as named"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.png", "no_suffix", "run.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    from sb3_ddpg_plus.checkpoints import atomic_write

    path = tmp_path / "result.md"
    write_file(path, "old")

    def half_write(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_write)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.md"]

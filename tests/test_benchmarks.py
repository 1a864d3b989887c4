"""
Tests of ``benchmarks/``: the algorithm registry, the grid runner (resume, shard), the report, the speed script and the
GIF. The statistics, the protocol and the zoo's hyperparameters are the package's (``test_experiments.py``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import algos, report, runner, speed
from benchmarks.profiles import PROFILES, Entry
from sb3_ddpg_plus.experiments.records import write_file, write_json


# ------------------------------------------------------------------------------------------------------- hyperparameters
def test_hyperparams_for_variants():
    base = algos.hyperparams_for("sb3_ddpg", "Pendulum-v1", budget=1234)
    assert base["n_timesteps"] == 1234 and base["gamma"] == 0.98 and base["policy_kwargs"] == {"net_arch": [400, 300]}
    assert algos.hyperparams_for("ddpg_plus", "Pendulum-v1") == algos.hyperparams_for("sb3_ddpg", "Pendulum-v1")
    td3 = algos.hyperparams_for("ddpg_plus_td3", "Pendulum-v1")
    assert td3["policy_kwargs"]["n_critics"] == 2 and td3["policy_delay"] == 2 and td3["target_policy_noise"] == 0.2
    ln = algos.hyperparams_for("ddpg_plus_ln_critic", "Pendulum-v1")
    assert ln["policy_kwargs"] == {"net_arch": [400, 300], "critic_layer_norm": True}  # merged, not replaced
    param = algos.hyperparams_for("ddpg_plus_param", "MountainCarContinuous-v0")
    assert param["action_noise"] == {"type": "none"} and param["param_noise"]["desired_action_stddev"] == 0.5
    assert algos.hyperparams_for("ddpg_plus_ou", "MountainCarContinuous-v0")["action_noise"]["sigma"] == 0.5
    assert algos.hyperparams_for("ddpg_plus_nstep", "Pendulum-v1")["n_steps"] == 5
    with pytest.raises(ValueError, match="unknown algorithm"):
        algos.hyperparams_for("nope", "Pendulum-v1")


def test_tuned_variant_needs_a_file(tmp_path):
    assert algos.hyperparams_for("ddpg_plus_tuned", "Pendulum-v1", tuned_dir=tmp_path) is None
    pytest.importorskip("sb3_ddpg_plus.hyperparams")
    write_file(tmp_path / "Pendulum-v1.yml", "policy: MlpPolicy\ngamma: 0.9\nn_timesteps: 500\n")
    tuned = algos.hyperparams_for("ddpg_plus_tuned", "Pendulum-v1", budget=100, tuned_dir=tmp_path)
    assert tuned["gamma"] == 0.9 and tuned["n_timesteps"] == 100  # the benchmark's budget wins


def test_sb3_kwargs_builds_noise_objects():
    from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    kwargs = algos.sb3_kwargs(algos.hyperparams_for("sb3_ddpg", "MountainCarContinuous-v0", budget=10), action_dim=1)
    assert isinstance(kwargs["action_noise"], OrnsteinUhlenbeckActionNoise) and "n_timesteps" not in kwargs
    assert isinstance(algos.make_action_noise({"type": "normal", "sigma": 0.2}, 3), NormalActionNoise)
    assert algos.make_action_noise({"type": "none"}, 3) is None
    with pytest.raises(ValueError, match="schedule"):
        algos.make_action_noise({"type": "normal", "sigma": 0.1, "schedule": {}}, 1)


# ------------------------------------------------------------------------------------------------------------- runner
def test_expand_is_seed_major_and_shards_partition():
    entries = [Entry("A", ("x", "y"), seeds=(0, 1), budget=10, eval_freq=5), Entry("B", ("x",), (0, 1, 2), 10, 5)]
    tasks = runner.expand(entries)
    assert [(t.seed, t.env, t.algo) for t in tasks[:3]] == [(0, "A", "x"), (0, "A", "y"), (0, "B", "x")]
    assert len(tasks) == 7
    shards = [runner.shard(tasks, i, 3) for i in range(3)]
    assert sorted(itertools.chain(*shards), key=tasks.index) == tasks  # every run exactly once
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert runner.parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "a/b", "1"):
        with pytest.raises(argparse.ArgumentTypeError):
            runner.parse_shard(bad)
    assert runner.parse_seeds("0-2,7") == [0, 1, 2, 7]


def test_profiles_are_consistent():
    for profile in PROFILES.values():
        for entry in profile.entries:
            assert entry.algos and entry.seeds and entry.budget > 0 and 0 < entry.eval_freq <= entry.budget
            assert all(a in algos.ALGOS for a in entry.algos), (profile.name, entry.env)
            assert entry.n_eval_episodes >= (10 if profile.name != "smoke" else 1)
    standard = {e.env: e for e in PROFILES["standard"].entries}
    assert standard["Pendulum-v1"].budget == 20_000 and len(standard["Pendulum-v1"].seeds) >= 5
    assert len(standard["MountainCarContinuous-v0"].seeds) >= 5
    evidence = [e for e in PROFILES["evidence"].entries if "Bullet" in e.env]
    assert len({e.env for e in evidence}) >= 2 and all(e.budget == 100_000 and len(e.seeds) >= 3 for e in evidence)
    for env in {e.env for e in evidence}:
        algos_here = {algo for e in evidence if e.env == env for algo in e.algos}
        assert {"sb3_ddpg", "sb3_td3", "ddpg_plus", "ddpg_plus_recommended"} <= algos_here


def _tiny_task(algo: str, seed: int = 0) -> runner.Task:
    overrides = {"learning_starts": 20, "batch_size": 16, "buffer_size": 500, "policy_kwargs": {"net_arch": [8]}}
    return runner.Task(
        "Pendulum-v1", algo, seed, budget=60, eval_freq=30, n_eval_episodes=1, overrides=tuple(sorted(overrides.items()))
    )


def test_runner_writes_run_file_and_resumes(tmp_path):
    tasks = [_tiny_task("sb3_ddpg", 0), _tiny_task("sb3_td3", 0)]
    assert runner.run_grid(tasks, tmp_path, jobs=1, command="test") == (2, 0, 0)
    path = runner.run_path(tmp_path, "Pendulum-v1", "sb3_ddpg", 60, 0)
    record = json.loads(path.read_text())
    assert record["status"] == "done" and record["seed"] == 0 and record["budget"] == 60
    assert record["eval"]["timesteps"] == [0, 30, 60] and len(record["eval"]["returns"][-1]) == 1
    assert record["final_return"] == record["eval"]["mean_return"][-1]
    assert record["hyperparams"]["learning_starts"] == 20 and record["hyperparams"]["gamma"] == 0.98
    assert record["versions"]["Stable-Baselines3"] != "-" and record["steps_per_s"] > 0
    assert record["machine"]["cpu_model"] and record["eval"]["env_seed"] == 10_000
    assert record["algo_class"] == "stable_baselines3.ddpg.ddpg.DDPG"
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave nothing behind
    mtime = path.stat().st_mtime_ns
    # Resume: both runs are skipped, the file is untouched.
    assert runner.run_grid(tasks, tmp_path, jobs=1) == (0, 2, 0)
    assert path.stat().st_mtime_ns == mtime
    # A failed (or half-written) run is run again.
    write_json(path, {"schema": 1, "status": "failed"})
    assert not runner.is_done(path)
    assert runner.run_grid(tasks, tmp_path, jobs=1) == (1, 1, 0)


def test_runner_ddpg_plus_tiny_run(tmp_path):
    pytest.importorskip("sb3_ddpg_plus")
    record = runner.run_task(_tiny_task("ddpg_plus_td3"), tmp_path)
    assert record["algo_class"].startswith("sb3_ddpg_plus")
    assert record["hyperparams"]["policy_kwargs"]["n_critics"] == 2 and len(record["eval"]["timesteps"]) == 3


def test_runner_cli_dry_run_shard(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    args = parser.parse_args(
        ["--profile", "smoke", "--envs", "Pendulum-v1", "--shard", "1/2", "--out", str(tmp_path), "--dry-run"]
    )
    runner.main(args)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("todo")]
    smoke = {e.env: e for e in PROFILES["smoke"].entries}["Pendulum-v1"]
    assert len(lines) == len(smoke.algos) * len(smoke.seeds) // 2


# ------------------------------------------------------------------------------------------------------------- report
def _synthetic_run(env: str, algo: str, seed: int, final: float, budget: int = 1000) -> dict:
    timesteps = [0, budget // 2, budget]
    return {
        "schema": 1,
        "status": "done",
        "env": env,
        "algo": algo,
        "algo_class": "sb3_ddpg_plus.ddpg_plus.DDPGPlus" if algo.startswith("ddpg_plus") else "stable_baselines3.X",
        "seed": seed,
        "budget": budget,
        "hyperparams": {"gamma": 0.98},
        "overrides": {},
        "eval": {
            "freq": budget // 2,
            "n_episodes": 10,
            "timesteps": timesteps,
            "mean_return": [final - 100.0, final - 50.0, final],
        },
        "final_return": final,
        "wall_time_s": 10.0,
        "steps_per_s": 100.0,
        "command": "python -m benchmarks run --profile standard",
        "versions": {"torch": "x"},
        "machine": {"cpu_model": "test cpu", "logical_cores": 2},
    }


def test_report_on_synthetic_runs(tmp_path):
    finals = {
        ("Pendulum-v1", "ddpg_plus"): [-150.0, -160.0, -170.0, -140.0, -400.0],
        ("Pendulum-v1", "sb3_ddpg"): [-200.0, -210.0, -190.0, -600.0, -180.0],
        ("Pendulum-v1", "sb3_td3"): [-100.0, -110.0, -120.0, -130.0, -105.0],
        ("MountainCarContinuous-v0", "ddpg_plus_param"): [93.0, 94.0, 92.0, 93.5, 91.0],
        ("MountainCarContinuous-v0", "sb3_ddpg"): [93.0, -0.1, 92.0, -0.2, 91.0],
    }
    for (env, algo), values in finals.items():
        for seed, final in enumerate(values):
            write_json(runner.run_path(tmp_path, env, algo, 1000, seed), _synthetic_run(env, algo, seed, final))
    write_json(tmp_path / "runs" / "junk.json", {"status": "failed"})  # ignored
    out = tmp_path / "report"
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    report.main(parser.parse_args(["--runs", str(tmp_path), "--out", str(out), "--n-boot", "2000"]))

    with open(out / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == report.SUMMARY_COLUMNS
    row = next(r for r in rows if r["env"] == "Pendulum-v1" and r["algo"] == "ddpg_plus")
    values = np.array(finals[("Pendulum-v1", "ddpg_plus")])
    assert int(row["n_seeds"]) == 5 and int(row["budget"]) == 1000
    assert float(row["mean"]) == pytest.approx(values.mean(), abs=1e-3)
    assert float(row["std"]) == pytest.approx(values.std(ddof=1), abs=1e-3)
    assert float(row["iqm"]) == pytest.approx(-160.0, abs=1e-3)  # middle three of five
    assert float(row["iqm_low"]) <= float(row["iqm"]) <= float(row["iqm_high"])
    assert len(rows) == len(finals)

    for env in ("Pendulum-v1", "MountainCarContinuous-v0"):
        assert (out / f"curves_{env}.png").read_bytes().startswith(b"\x89PNG")
    readme = (out / "README.md").read_text()
    assert "**not better than SB3 TD3**" in readme  # TD3 wins on Pendulum and the report must say so
    assert "## Against SB3 TD3" in readme and "| Pendulum-v1 | 1,000 | ddpg_plus (5 seeds) |" in readme
    assert "Solved (mean >= 90) by ddpg_plus_param" in readme
    assert "python -m benchmarks run --profile standard" in readme and "test cpu" in readme
    assert len((out / "runs.csv").read_text().splitlines()) == 1 + sum(map(len, finals.values()))
    # Agarwal et al.'s additions: a performance profile over both envs, steps to threshold; no training seconds here
    assert (out / "performance_profile.png").read_bytes().startswith(b"\x89PNG")
    assert "## Performance profile" in readme and "| ddpg_plus_param | 1 | 5 |" in readme
    assert "Steps to threshold (return >= 90" in readme and "Steps to threshold (return >= -200" in readme
    assert "predate the record of training seconds" in readme and not list(out.glob("time_*.png"))


def test_td3_verdict_by_probability_of_improvement():
    assert report.poi_verdict((0.9, 0.6, 1.0)) == "beats"
    assert report.poi_verdict((0.1, 0.0, 0.4)) == "loses"
    assert report.poi_verdict((0.6, 0.5, 0.9)) == "indistinguishable"  # an interval that holds 0.5
    assert report.poi_verdict(None) is None

    def row(env, algo, poi_td3):
        return {"env": env, "budget": 1000, "algo": algo, "n_seeds": 5, "poi_td3": poi_td3}

    rows = [
        row("A", "ddpg_plus", (0.1, 0.0, 0.3)),  # the drop-in loses on A, but the recommended one speaks for A
        row("A", "ddpg_plus_recommended", (0.8, 0.6, 1.0)),
        row("A", "ddpg_plus_nstep", (0.0, 0.0, 0.1)),  # not a verdict configuration
        row("B", "ddpg_plus_recommended", (0.5, 0.2, 0.8)),
        row("C", "ddpg_plus", (0.2, 0.0, 0.4)),  # no recommended run on C: the drop-in
        row("C", "sb3_td3", None),
    ]
    text = "\n".join(report.td3_verdict_section(rows))
    assert "| A | 1,000 | ddpg_plus_recommended (5 seeds) | 0.80 [0.60, 1.00] | **beats** |" in text
    assert "| B | 1,000 | ddpg_plus_recommended (5 seeds) | 0.50 [0.20, 0.80] | indistinguishable |" in text
    assert "| C | 1,000 | ddpg_plus (5 seeds) | 0.20 [0.00, 0.40] | **loses** |" in text
    assert "| A | 1,000 | ddpg_plus (5 seeds)" not in text and "ddpg_plus_nstep" not in text
    assert "ddpg_plus_recommended: beats SB3 TD3 on 1 of 2 environment(s), indistinguishable on 1, loses on 0." in text
    assert "ddpg_plus: beats SB3 TD3 on 0 of 1 environment(s), indistinguishable on 0, loses on 1." in text
    assert report.td3_verdict_section([row("A", "ddpg_plus", None)]) == []


def test_performance_profile_against_a_count():
    from sb3_ddpg_plus.experiments.stats import performance_profile, performance_profile_ci

    rng = np.random.default_rng(0)
    taus = np.linspace(-0.5, 1.5, 41)
    equal = [rng.normal(0.5, 0.4, size=5) for _ in range(3)]
    pooled = np.concatenate(equal)
    expected = [sum(score > tau for score in pooled) / len(pooled) for tau in taus]
    assert performance_profile(equal, taus) == pytest.approx(expected)
    # Unequal numbers of runs: every task weighs the same
    unequal = [np.array([0.1, 0.2, 0.9, 1.1]), np.array([0.5])]
    few = [0.0, 0.15, 0.5, 1.0, 2.0]
    for tau, fraction in zip(few, performance_profile(unequal, few), strict=True):
        assert fraction == pytest.approx(np.mean([np.mean(task > tau) for task in unequal]))
    assert performance_profile([np.array([0.3, 0.3])], [0.3])[0] == 0.0  # strictly above
    point, low, high = performance_profile_ci(equal, taus, n_resamples=500)
    assert point == pytest.approx(expected) and np.all(low <= point) and np.all(point <= high)
    assert np.all(np.diff(point) <= 0) and low[0] == high[0] == 1.0 and low[-1] == high[-1] == 0.0
    _, low, high = performance_profile_ci(unequal, [0.5], n_resamples=500)
    assert 0.0 <= low[0] < high[0] <= 1.0  # the one-run task is constant, the other varies
    with pytest.raises(ValueError):
        performance_profile([], taus)


def _curve_run(algo: str, seed: int, returns: list[float], train_s: list[float] | None = None) -> dict:
    run = _synthetic_run("MountainCarContinuous-v0", algo, seed, returns[-1], budget=3000)
    run["eval"].update(freq=1000, timesteps=[0, 1000, 2000, 3000], mean_return=returns)
    if train_s is not None:
        run["eval"]["train_s"] = train_s
    return run


def test_steps_to_threshold_on_a_hand_made_curve():
    assert report.first_reach([0, 1000, 2000, 3000], [-5.0, 95.0, 80.0, 92.0], 90.0) == 1000  # first, not last
    assert report.first_reach([0, 1000], [-5.0, 89.9], 90.0) is None
    assert report.median_to_reach([1000.0, None, 3000.0]) == 3000.0  # the run that never reaches counts as last
    assert report.median_to_reach([1000.0, None, None]) == np.inf
    runs = [
        _curve_run("ddpg_plus", 0, [0.0, 91.0, 93.0, 93.0]),
        _curve_run("ddpg_plus", 1, [0.0, 0.0, 92.0, 93.0]),
        _curve_run("ddpg_plus", 2, [0.0, 0.0, 0.0, 0.0]),
    ]
    lines = report.steps_to_threshold_table("MountainCarContinuous-v0", {"ddpg_plus": runs})
    # IQM of three runs is their mean: 30.3 at 1000 steps, 61.7 at 2000, 62 at 3000: never 90
    assert "| ddpg_plus | never | 2,000 | 2/3 |" in lines
    easy = [_curve_run("sb3_ddpg", seed, [0.0, 95.0, 95.0, 95.0]) for seed in range(2)]
    assert "| sb3_ddpg | 1,000 | 1,000 | 2/2 |" in report.steps_to_threshold_table(
        "MountainCarContinuous-v0", {"sb3_ddpg": easy}
    )
    assert report.steps_to_threshold_table("CartPole-v1", {"ddpg_plus": runs}) == []  # no threshold


def test_wall_clock_table_on_tiny_records(tmp_path):
    returns = [0.0, 50.0, 95.0, 95.0]
    by_algo = {
        "ddpg_plus": [
            _curve_run("ddpg_plus", 0, returns, [0.0, 1.0, 2.0, 3.0]),
            _curve_run("ddpg_plus", 1, returns, [0.0, 2.0, 4.0, 6.0]),
            _curve_run("ddpg_plus", 2, [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 3.0]),
        ],
        "sb3_ddpg": [_curve_run("sb3_ddpg", 0, returns)],  # no training seconds: left out
    }
    lines = report.time_to_threshold_table("MountainCarContinuous-v0", by_algo)
    # reaches 90 at 2 s and 4 s, never: median 4 s; whole budget 3, 6, 3 s: median 3 s, 1000 env steps per s
    assert "| ddpg_plus | 3 | 4 | 2/3 | 3 | 1000 |" in lines and not any("sb3_ddpg" in line for line in lines)
    assert report.time_to_threshold_table("MountainCarContinuous-v0", {"sb3_ddpg": by_algo["sb3_ddpg"]}) == []
    assert report.plot_curves("MountainCarContinuous-v0", 3000, by_algo, tmp_path / "t.png", n_boot=100, against_time=True)
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")
    # Side by side: runs 0 and 1 overlap, run 2 ran alone
    times = [("10:00", "10:05"), ("10:04", "10:09"), ("11:00", "11:01")]
    runs = [
        {**run, "started": f"2026-01-01T{a}:00+00:00", "finished": f"2026-01-01T{b}:00+00:00"}
        for run, (a, b) in zip(by_algo["ddpg_plus"], times, strict=True)
    ]
    assert report.overlapping_runs(runs) == 2
    note = " ".join(report.timing_note([{**run, "command": "python -m benchmarks run --jobs 2"} for run in runs]))
    assert "2 of 3 runs ran at the same time" in note and "`--jobs 2`" in note and "2 logical cores" in note


def test_report_without_runs_exits(tmp_path):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    with pytest.raises(SystemExit):
        report.main(parser.parse_args(["--runs", str(tmp_path), "--out", str(tmp_path)]))


# -------------------------------------------------------------------------------------------------------- speed, gif
def test_floor_and_buffer_bytes():
    from stable_baselines3 import DDPG

    floor = speed.FloorDDPG(obs_dim=3, action_dim=1, arch=(8,), steps=3, seed=0)
    before = [p.clone() for p in floor.actor_target.parameters()]
    assert floor.measure() > 0
    assert any(not np.allclose(a, b.detach()) for a, b in zip(before, floor.actor_target.parameters(), strict=True))
    assert all(p.requires_grad for p in floor.critic.parameters())  # unfrozen after the actor step
    # SB3's default buffer on Pendulum: obs 3 + next obs 3 + action 1 float32, reward, done, timeout float32 = 40 B.
    assert speed.buffer_bytes_per_transition(DDPG, "Pendulum-v1", optimize_memory_usage=False) == pytest.approx(40.0)
    assert speed.buffer_bytes_per_transition(DDPG, "Pendulum-v1", optimize_memory_usage=True) == pytest.approx(28.0)


def test_env_step_timer_steps_the_wrapped_env():
    timer = speed.EnvStepTimer("Pendulum-v1", seed=0, steps=5)
    before = timer.env.get_attr("_elapsed_steps")[0]
    assert timer.measure() > 0
    assert timer.env.get_attr("_elapsed_steps")[0] == before + 5
    assert timer.env.envs[0].__class__.__name__ == "Monitor"


def test_ddpg_update_flops_match_the_floors_matrix_products():
    from torch.utils.flop_counter import FlopCounterMode

    for arch in [(16,), (64, 64), (40, 30, 20)]:
        floor = speed.FloorDDPG(obs_dim=3, action_dim=2, arch=arch, steps=1, seed=0)
        with FlopCounterMode(display=False) as counter:
            floor.update()
        # The eager floor also computes the gradient of the critic's first layer for the observation's columns (2 B obs
        # h1), which the minimal count leaves out: the input of that layer is cat(obs, actor(obs)).
        assert counter.get_total_flops() == speed.ddpg_update_flops(3, 2, arch) + 2 * speed.BATCH_SIZE * 3 * arch[0]
    assert speed.gemm_probe_shape(3, 1, (400, 300)) == (256, 400, 300)
    assert speed.gemm_probe_shape(3, 1, (16,)) == (256, 4, 16)


def test_shortfall_lines_explain_each_unmet_target():
    def case(env, arch, learn, train, single, env_steps):
        return {
            "env": env,
            "arch": list(arch),
            "learn_steps_per_s": learn,
            "train_updates_per_s": train,
            "train_1step_updates_per_s": single,
            "env_steps_per_s": env_steps,
            "gemm_bound_updates_per_s": 4000.0,
            "learn_ratio_ours_sb3": learn["ours"] / learn["sb3"],
            "learn_ratio_ours_sbx": learn["ours"] / learn["sbx"],
            "train_ratio_ours_sbx": train["ours"] / train["sbx"],
        }

    # Step: env 100 us + train(1) 1000 us + 100 us rest = 1200 us; SB3 2000 us allows 800 us for 2.5x: out of reach
    slow = case(
        "A",
        (64, 64),
        {"sb3": 500.0, "ours": 1e6 / 1200, "sbx": 1000.0},
        {"ours": 1000.0, "sbx": 2000.0},
        {"ours": 1000.0, "sbx": 1250.0},
        10_000.0,
    )
    met = case(
        "B",
        (400, 300),
        {"sb3": 50.0, "ours": 200.0, "sbx": 100.0},
        {"ours": 200.0, "sbx": 100.0},
        {"ours": 200.0, "sbx": 100.0},
        10_000.0,
    )
    text = "\n".join(speed.shortfall_lines({"sbx": {"measured": True}, "cases": [slow, met]}))
    assert "## What is not reached, and why" in text
    assert "alone take 1100 us, more than the 800 us per step that 2.5x SB3 allows" in text
    # SBX: 1000 us per step, its train(1) call 800 us, so its rest is 100 us: the gap is all in the call
    assert "a step costs DDPGPlus 1200 us and SBX 1000 us (+200): one `train(1)` call 1000 vs 800 us (+200)" in text
    assert "the rest of the step (acting, storing, callbacks, logger) 100 vs 100 us (+0)" in text
    assert "an update costs DDPGPlus 1000 us and SBX 500 us; its matrix products alone need 250 us" in text
    assert "B [400, 300]" not in text  # every target met there
    assert speed.shortfall_lines({"sbx": {"measured": True}, "cases": [met]}) == []


def test_gemm_rates_and_parameter_count():
    from stable_baselines3 import DDPG

    rates = speed.gemm_rates(8, 16, 8, budget_s=0.001, rounds=1)
    assert {"numpy", "torch.mm"} <= set(rates) and all(rate > 0 for rate in rates.values())
    model = DDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), device="cpu")
    # actor 3->8->1, critic 4->8->1; targets not counted
    assert speed.count_parameters(model) == (3 * 8 + 8 + 8 + 1) + (4 * 8 + 8 + 8 + 1)


def test_speed_worker_reports_errors_and_pins():
    worker = speed.start_workers(["sb3"], threads=1, core=speed.default_core())["sb3"]
    try:
        assert worker.info["ready"] and worker.info["torch_threads"] == 1
        if worker.info["affinity"]:
            assert len(worker.info["affinity"]) == 1
        assert worker.call("gemm", shape=[8, 8, 8], budget_s=0.001, rounds=1)["gflops"]["numpy"] > 0
        with pytest.raises(RuntimeError, match="unknown request"):
            worker.call("nonsense")
        assert worker.call("clear") == {}  # still serving after an error
    finally:
        worker.close()
    assert worker.process.returncode == 0


def quick_speed(tmp_path: Path, *extra: str) -> dict:
    parser = argparse.ArgumentParser()
    speed.add_arguments(parser)
    argv = ["--quick", "--envs", "Pendulum-v1", "--archs", "16", "--out", str(tmp_path), "--no-buffer", *extra]
    return speed.main(parser.parse_args(argv))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("no_sbx", [False, True])
def test_speed_skips_sbx_with_one_line_when_not_installed(tmp_path, monkeypatch, capsys, no_sbx):
    pytest.importorskip("sb3_ddpg_plus")
    monkeypatch.setitem(sys.modules, "sbx", None)  # as if SBX were not installed: `import sbx` fails
    assert speed.sbx_missing_reason() == "sbx is not importable"
    started = []

    def start_workers(libraries, threads, core):
        started.append(list(libraries))
        raise _Stop

    monkeypatch.setattr(speed, "start_workers", start_workers)
    with pytest.raises(_Stop):
        quick_speed(tmp_path, *(["--no-sbx"] if no_sbx else []))
    assert started == [["sb3", "ours"]]
    lines = capsys.readouterr().out.splitlines()
    # --no-sbx asks for no SBX: nothing to say then
    assert lines == ([] if no_sbx else ["SBX not installed: pip install -e '.[peers]' to compare with it"])


@pytest.mark.slow
def test_speed_quick_writes_report_and_skips_missing_sbx(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sb3_ddpg_plus")
    monkeypatch.setitem(sys.modules, "sbx", None)  # as if SBX were not installed: `import sbx` fails
    result = quick_speed(tmp_path, "--no-pin")  # the workers import side by side (pinning: the worker test above)
    assert speed.SBX_SKIP_LINE in capsys.readouterr().out.splitlines()
    case = result["cases"][0]
    assert case["libraries"] == ["sb3", "ours"] and not result["sbx"]["measured"]
    assert case["learn_ratio_ours_sb3"] > 0 and case["train_updates_per_s"]["floor"] > 0
    assert case["train_1step_ratio_ours_sb3"] > 0 and case["gemm_bound_updates_per_s"] > 0
    assert case["env_steps_per_s"] > case["learn_steps_per_s"]["ours"]  # a learn() step includes an env step
    assert case["params"]["sb3"] == case["params"]["ours"] == 178
    assert result["settings"]["pinning"] == "not pinned"
    text = (tmp_path / "speed.md").read_text()
    assert "ours / SB3" in text and "torch threads 1" in text and "DDPGPlus outside env.step" in text
    assert "ours / SBX" not in text and "SBX DDPG: not measured" in text and "GEMM bound" in text
    assert json.loads((tmp_path / "speed.json").read_text())["settings"]["repeats"] == 1


@pytest.mark.slow
def test_speed_quick_with_sbx(tmp_path):
    pytest.importorskip("sb3_ddpg_plus")
    pytest.importorskip("sbx")
    result = quick_speed(tmp_path, "--repeats", "2", "--learn-steps", "16", "--train-steps", "4")
    case = result["cases"][0]
    assert case["libraries"] == ["sb3", "ours", "sbx"] and result["sbx"]["measured"]
    assert case["params"]["sbx"] == case["params"]["sb3"]
    assert len(case["ratios"]["learn_ours_sbx"]) == 2 and case["train_ratio_ours_sbx"] > 0
    assert case["train_1step_updates_per_s"]["sbx"] > 0 and "JAX/XLA" in case["gemm"]["gflops"]
    assert case["warmup_s"]["train"]["sbx"] > 0 and case["warmup_s"]["learn"]["sbx"] > 0  # JIT compilation, not timed
    assert "xla_cpu_multi_thread_eigen=false" in result["settings"]["xla_flags"] and result["versions"]["sbx-rl"] != "-"
    text = (tmp_path / "speed.md").read_text()
    assert "ours / SBX" in text and "SBX DDPG" in text and "first train(K) call" in text


def test_gif_records_and_encodes():
    pytest.importorskip("pygame")
    from benchmarks import gif

    class ZeroPolicy:
        def predict(self, obs, deterministic=True):
            return np.zeros(1, dtype=np.float32), None

    frames, total, steps = gif.record_episode(ZeroPolicy(), "Pendulum-v1", seed=0, max_steps=4, width=32)
    assert steps == 4 and len(frames) == 5 and frames[0].shape == (32, 32, 3) and total < 0
    assert gif.encode_gif(frames, fps=30).startswith(b"GIF8")


def test_mean_normalised_score_section_against_a_hand_computation():
    from benchmarks.aggregate import bootstrap_mean_of_task_means, mean_of_task_means, mean_score_section

    scores = {
        "ddpg_plus_recommended": {
            ("A", 10): np.array([0.8, 0.9, 1.0]),
            ("B", 10): np.array([0.1, 0.2, 0.3]),
            ("H", 10): np.array([0.5, 0.5]),
            ("X", 10): np.array([0.4]),
        },
        "sb3_td3": {("A", 10): np.array([0.2, 0.3]), ("B", 10): np.array([0.6, 0.8]), ("H", 10): np.array([0.9])},
        "sb3_ddpg": {("A", 10): np.array([0.0, 0.1]), ("B", 10): np.array([0.0, 0.2]), ("H", 10): np.array([0.1])},
    }
    assert mean_of_task_means([scores["ddpg_plus_recommended"][t] for t in (("A", 10), ("B", 10))]) == pytest.approx(0.55)
    # A task with a single distinct value never moves under resampling: the aggregate's interval is a point.
    samples = bootstrap_mean_of_task_means([np.array([0.3, 0.3]), np.array([0.7])], 100, np.random.default_rng(0))
    assert np.allclose(samples, 0.5)

    text = "\n".join(mean_score_section(scores, held_out=["H"], n_resamples=2000))
    # A and B are aggregated (H held out, X has no baseline run): 0.55 vs TD3 (0.25 + 0.7) / 2 = 0.475, DDPG 0.075
    td3_row = next(line for line in text.splitlines() if line.startswith("| SB3 TD3 |"))
    assert td3_row.startswith("| SB3 TD3 | 2 | 6 / 4 | 0.55 [") and "| 0.47 [" in td3_row
    assert "| +0.08 [" in td3_row and td3_row.endswith("| at least SB3 TD3's; the interval holds 0 |")
    ddpg_row = next(line for line in text.splitlines() if line.startswith("| SB3 DDPG |"))
    assert "| 0.08 [" in ddpg_row and "| +0.48 [" in ddpg_row
    assert ddpg_row.endswith("| at least SB3 DDPG's, the interval excludes 0 |")
    assert "SB3 TD3 has no run yet on X 10." in text and "SB3 DDPG has no run yet on X 10." in text
    assert text.split("| B | 10 |")[1].splitlines()[0].endswith("| SB3 TD3 |")
    assert text.split("| A | 10 |")[1].splitlines()[0].endswith("| - |")
    assert text.split("| H (held out) | 10 |")[1].splitlines()[0].endswith("| SB3 TD3 |")
    assert text.split("| X | 10 |")[1].splitlines()[0].endswith("| - | - | - |")  # no baseline there

    # A baseline that ran on part of the tasks is compared over those only
    partial = {**scores, "sb3_ddpg": {("B", 10): scores["sb3_ddpg"][("B", 10)]}}
    ddpg_row = next(line for line in mean_score_section(partial, held_out=["H"]) if line.startswith("| SB3 DDPG |"))
    assert ddpg_row.startswith("| SB3 DDPG | 1 | 3 / 2 | 0.20 [") and "| +0.10 [" in ddpg_row

    # Below a baseline, said so; no section without the configuration or any baseline
    worse = {**scores, "sb3_td3": {t: v + 1.0 for t, v in scores["sb3_td3"].items()}}
    assert "**below SB3 TD3's**, the interval excludes 0" in "\n".join(mean_score_section(worse, held_out=["H"]))
    assert mean_score_section({"sb3_td3": scores["sb3_td3"]}) == []
    assert mean_score_section({"ddpg_plus_recommended": scores["ddpg_plus_recommended"]}) == []


def test_overrides_lines_name_the_algorithms_when_they_differ():
    """One line when every algorithm of a group applied the same overrides; one per set when some ran without (the
    recommended configuration keeps its own networks on MountainCar in the evidence profile)."""
    from benchmarks.report import _overrides_lines

    same = {"a": [{"overrides": {"x": 1}}], "b": [{"overrides": {"x": 1}}]}
    assert _overrides_lines(same) == ['Overrides applied to every algorithm here: `{"x": 1}`.']
    assert _overrides_lines({"a": [{"overrides": {}}], "b": [{}]}) == []
    mixed = {"a": [{"overrides": {"x": 1}}], "b": [{"overrides": {"x": 1}}], "c": [{}]}
    assert _overrides_lines(mixed) == ['Overrides applied to a, b: `{"x": 1}`.', "Overrides applied to c: none."]


def test_replay_cost_writes_a_self_describing_result(tmp_path):
    """``replay_cost.py --out``: the table with its command, machine, load and versions, and the JSON it came from;
    every variant measured is in the table (the C-kernel rows only where the kernels load)."""
    import json

    from benchmarks import replay_cost
    from sb3_ddpg_plus import native_tree

    replay_cost.main(["--repeats", "1", "--calls", "2", "--fill", "600", "--out", str(tmp_path)])
    text = (tmp_path / "replay_cost.md").read_text()
    result = json.loads((tmp_path / "replay_cost.json").read_text())
    assert "python benchmarks/replay_cost.py --repeats 1 --calls 2 --fill 600" in text
    assert "Machine:" in text and "Versions:" in text and "PyTorch" in text
    kernels = native_tree.load_kernels() is not None
    expected = {"None", "per_numpy", "lap_numpy"} | ({"per", "lap"} if kernels else set())
    assert set(result["share_of_update"]) == expected
    assert ("PER (sum-tree + min-tree, IS weights), C kernels" in text) == kernels
    assert "PER, numpy walk (no C compiler)" in text
    assert all(share > 0 for share in result["share_of_update"].values())

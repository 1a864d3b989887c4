"""``benchmarks/exploration.py``: its experiments run on the shared protocol and write their result files."""

import json

import pytest

from benchmarks import exploration

pytest.importorskip("scipy")  # the statistics of the MountainCar table


def test_mountaincar_runs_the_protocol_and_writes_its_table(tmp_path):
    argv = ["mountaincar", "--seeds", "0", "--budget", "200", "--eval-freq", "100", "--eval-episodes", "1"]
    exploration.main([*argv, "--net-arch", "8", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "mountaincar_exploration.json").read_text())
    assert data["protocol"] == {"n_eval_episodes": 1, "eval_freq": 100, "eval_seed_offset": 10_000}
    assert sorted(run["config"] for run in data["runs"]) == sorted(exploration.MOUNTAINCAR_CONFIGS)
    for run in data["runs"]:
        # the protocol's grid: the untrained policy at step 0, then every eval_freq steps
        assert [step for step, _ in run["curve"]] == [0, 100, 200]
        assert [len(returns) for returns in run["eval_returns"]] == [1, 1, 1]
        assert run["final"] == run["curve"][-1][1]
        assert run["training_episodes"] == 0  # an episode lasts 999 steps
    table = (tmp_path / "mountaincar_exploration.md").read_text()
    assert "evaluation at step 0, every 100 steps and at the end with 1 deterministic episodes" in table
    assert all(f"| {config} | " in table for config in exploration.MOUNTAINCAR_CONFIGS)


def test_param_noise_distance_writes_its_table(tmp_path):
    exploration.main(["param-noise-distance", "--steps", "1200", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "param_noise_pendulum.json").read_text())
    assert data["desired"] == 0.2 and len(data["distances"]) >= 2
    assert "| adaptations | " in (tmp_path / "param_noise_pendulum.md").read_text()


def test_mountaincar_refuses_an_empty_grid():
    with pytest.raises(SystemExit):
        exploration.main(["mountaincar", "--budget", "100", "--eval-freq", "200"])

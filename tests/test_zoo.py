import importlib
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from sb3_ddpg_plus import DDPGPlus, zoo
from sb3_ddpg_plus.experiments.search_space import NOISE_TYPES, convert_ddpg_plus_params, sample_ddpg_plus_params
from sb3_ddpg_plus.experiments.zoo_hyperparams import ddpg_plus_hyperparams

pytest.importorskip("rl_zoo3")

ZOO = [sys.executable, "-m", "sb3_ddpg_plus.zoo"]
PENDULUM = ["--algo", "ddpg_plus", "--env", "Pendulum-v1"]
TINY = ["-n", "300", "-params", "learning_starts:100", "policy_kwargs:dict(net_arch=[16])"]


def run_zoo(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([*ZOO, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def train_tiny(log_folder: Path, seed: int = 1, *extra: str) -> Path:
    """A few hundred steps on Pendulum-v1 with a tiny network; returns the run's folder."""
    run_zoo("train", *PENDULUM, *TINY, "--seed", str(seed), "--log-folder", str(log_folder), *extra)
    runs = sorted((log_folder / "ddpg_plus").glob("Pendulum-v1_*"), key=lambda path: path.stat().st_mtime)
    assert (runs[-1] / "Pendulum-v1.zip").exists()
    return runs[-1]


def test_zoo_train_and_enjoy(tmp_path):
    train_tiny(tmp_path)
    result = run_zoo("enjoy", *PENDULUM, "-f", str(tmp_path), "-n", "200", "--no-render")
    assert "Mean reward" in result.stdout


def test_zoo_train_defaults_come_from_this_module(tmp_path):
    # Without --conf-file, rl-zoo3 imports the module named instead and reads its `hyperparams`: the zoo's ddpg.yml
    # with our differences, computed when read (a fresh dict: rl-zoo3 updates the entry it uses)
    assert zoo._with_default_conf_file([*PENDULUM])[-2:] == ["--conf-file", zoo.DEFAULT_CONF_FILE]
    assert zoo._with_default_conf_file([*PENDULUM, "--conf-file", "mine.yml"]) == [*PENDULUM, "--conf-file", "mine.yml"]
    module = importlib.import_module(zoo.DEFAULT_CONF_FILE)
    assert module.hyperparams == ddpg_plus_hyperparams() and module.hyperparams is not module.hyperparams
    with pytest.raises(AttributeError, match="no attribute 'hyperparam'"):
        _ = zoo.hyperparam
    run = train_tiny(tmp_path)
    config = (run / "Pendulum-v1" / "config.yml").read_text()
    assert "action_noise" in config and "noise_type" not in config and "gamma" in config


def test_zoo_train_resumes_from_a_saved_model(tmp_path):
    # `train -i model.zip` loads with the YAML's plain-data action noise (DDPGPlus.load(..., action_noise={...}))
    first = train_tiny(tmp_path / "first")
    resumed = train_tiny(tmp_path / "resumed", 2, "-i", str(first / "Pendulum-v1.zip"))
    before, after = DDPGPlus.load(first / "Pendulum-v1.zip"), DDPGPlus.load(resumed / "Pendulum-v1.zip")
    # the zoo restarts the step count (as upstream) but the gradient steps go on from the loaded model's
    assert after.num_timesteps == 300 and after._n_updates == 2 * before._n_updates > 0


def test_zoo_optimize_writes_its_report(tmp_path):
    # the report (optuna's trials_dataframe) needs pandas, which rl-zoo3 does not declare
    optimize = ["-optimize", "--n-trials", "2", "--n-evaluations", "1", "--eval-episodes", "1", "--no-optim-plots"]
    search = ["--sampler", "random", "--pruner", "none"]
    run_zoo("train", *PENDULUM, "-n", "200", *optimize, *search, "--seed", "1", "--log-folder", str(tmp_path))
    (report,) = (tmp_path / "ddpg_plus").glob("report_Pendulum-v1_2-trials-200-random-none_*.csv")
    assert len(report.read_text().splitlines()) == 3  # header and 2 trials


@pytest.mark.slow
def test_zoo_record_video_and_record_training(tmp_path):
    # --save-freq and --eval-freq leave a checkpoint and a best model beside the final one: record_training films all 3
    train_tiny(tmp_path, 1, "--save-freq", "200", "--eval-freq", "150", "--eval-episodes", "1")
    videos = tmp_path / "videos"
    run_zoo("record_video", *PENDULUM, "-f", str(tmp_path), "-n", "20", "-o", str(videos))
    (video,) = videos.glob("*.mp4")
    assert video.name.startswith("final-model-ddpg_plus-Pendulum-v1") and video.stat().st_size > 0
    # no ffmpeg on the PATH (as on a fresh machine): record_training takes imageio-ffmpeg's
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + "/usr/bin" + os.pathsep + "/bin")
    training = tmp_path / "training"
    run_zoo("record_training", *PENDULUM, "-f", str(tmp_path), "-n", "20", "-o", str(training), env=env)
    names = sorted(path.name for path in training.glob("*.mp4"))
    assert [name.split("-ddpg_plus")[0] for name in names] == ["best-model", "checkpoint-200", "final-model", "training.mp4"]
    assert all((training / name).stat().st_size > 0 for name in names)


@pytest.mark.slow
def test_zoo_plots(tmp_path):
    # all_plots needs two runs with at least two evaluation episodes each
    for seed in (1, 2):
        train_tiny(tmp_path / "logs", seed, "--eval-freq", "150", "--eval-episodes", "2")
    env = dict(os.environ, MPLBACKEND="Agg")
    run_zoo("plot_train", *PENDULUM, "-f", str(tmp_path / "logs"), "-w", "1", env=env)
    run_zoo("all_plots", "--algos", "ddpg_plus", "--env", "Pendulum-v1", "-f", "logs", "--no-display", "-o", "results",
            env=env, cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "results.pkl").exists()
    run_zoo("plot_from_file", "-i", "results.pkl", "-o", "figure.png", "--format", "png", env=env, cwd=tmp_path)
    assert (tmp_path / "figure.png").read_bytes().startswith(b"\x89PNG")


def test_zoo_usage_error():
    result = subprocess.run([sys.executable, "-m", "sb3_ddpg_plus.zoo"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "usage" in result.stderr
    assert all(command in result.stderr for command in ("train", "enjoy", "record_video", "record_training", "all_plots"))


def test_zoo_without_rl_zoo3_names_the_extra(tmp_path):
    # A package that fails to import as a missing one does: `python -m sb3_ddpg_plus.zoo` as without the zoo extra
    fake = tmp_path / "fake" / "rl_zoo3"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'rl_zoo3'\", name='rl_zoo3')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([*ZOO, "train", *PENDULUM], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1, result.stderr
    assert "'rl_zoo3'" in result.stderr and 'pip install "sb3_ddpg_plus[zoo]"' in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv, missing, importers",
    [
        (["train", *PENDULUM], "rl_zoo3", []),
        (["train", *PENDULUM, "-optimize"], "pandas", []),  # only read after the last trial: checked before the first
        (["enjoy", *PENDULUM], "requests", ["rl_zoo3.enjoy", "rl_zoo3.load_from_hub"]),
        (["record_video", *PENDULUM], "moviepy", []),
        (["plot_train", *PENDULUM, "-f", "logs"], "seaborn", ["rl_zoo3.plots"]),
    ],
)
def test_zoo_missing_package_names_the_extra(monkeypatch, argv, missing, importers):
    # sys.modules[name] = None makes `import name` raise ModuleNotFoundError, as an uninstalled package does; the zoo
    # modules that import it are forgotten so that they import it again (monkeypatch puts everything back afterwards)
    for name in list(sys.modules):
        if name.startswith(tuple(f"{prefix}." for prefix in (missing, *importers))) or name in importers:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.setattr(zoo, "register", lambda: pytest.fail("the zoo ran although a package it needs is missing"))
    with pytest.raises(SystemExit) as error:
        zoo.main(argv)
    message = str(error.value.code)
    assert f"'{missing}'" in message and 'pip install "sb3_ddpg_plus[zoo]"' in message


def test_sampler_covers_noise_types_and_none_means_none():
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(60):
        trial = study.ask()
        kwargs = sample_ddpg_plus_params(trial, n_actions=1, n_envs=1, additional_args={})
        noise_type = trial.params["noise_type"]
        seen.add(noise_type)
        if noise_type == "none":
            assert kwargs["action_noise"] == {"type": "none"} and kwargs["param_noise"] is None
        # the converter alone rebuilds the same kwargs (used by --trial-id)
        assert convert_ddpg_plus_params(trial.params) == kwargs
        # the zoo's file keeps the policy and, without a budget, the buffer size and warm-up
        assert not {"policy", "buffer_size", "learning_starts"} & set(kwargs)
        study.tell(trial, 0.0)
    assert seen == set(NOISE_TYPES)


def test_zoo_registers_the_shared_search_space():
    import rl_zoo3.hyperparams_opt as hyperparams_opt

    zoo.register()
    assert hyperparams_opt.HYPERPARAMS_SAMPLER["ddpg_plus"] is sample_ddpg_plus_params
    assert hyperparams_opt.HYPERPARAMS_CONVERTER["ddpg_plus"] is convert_ddpg_plus_params

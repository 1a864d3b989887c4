"""
The experiment core shared by ``tuning/`` (Optuna studies) and ``benchmarks/`` (grids of runs against SB3), and by
rl-zoo3's ``-optimize`` through :mod:`sb3_ddpg_plus.zoo`. Each job is written once, here:

- :mod:`~sb3_ddpg_plus.experiments.envs`: environment creation (PyBullet ids registered on demand, its C-level
  prints silenced);
- :mod:`~sb3_ddpg_plus.experiments.protocol`: train one model on one env with one seed and evaluate it on a grid of
  timesteps (SB3's ``evaluate_policy`` with ``EvalCallback``'s semantics), and the score of a run;
- :mod:`~sb3_ddpg_plus.experiments.search_space`: the search space of DDPGPlus's knobs, with rl-zoo3's sampler and
  converter signatures as thin adapters;
- :mod:`~sb3_ddpg_plus.experiments.stats`: IQM (``scipy.stats.trim_mean``), stratified bootstrap intervals and the
  probability of improvement (``scipy.stats.mannwhitneyu``), as rliable defines them;
- :mod:`~sb3_ddpg_plus.experiments.zoo_hyperparams`: rl-zoo3's DDPG/TD3 hyperparameters, read from the files rl-zoo3
  installs, without ``eval``;
- :mod:`~sb3_ddpg_plus.experiments.records`: what a result file records about where it was made (SB3's
  ``get_system_info()`` plus the CPU and a few package versions) and atomic text/JSON writes through
  :func:`sb3_ddpg_plus.checkpoints.atomic_write`.

Dependencies point one way: ``tuning/`` and ``benchmarks/`` import this subpackage; it imports only the package's
public modules (:mod:`sb3_ddpg_plus.hyperparams`, :mod:`sb3_ddpg_plus.checkpoints`), never ``tuning/`` or
``benchmarks/``. Nothing is imported here eagerly: ``stats`` needs scipy and ``search_space`` needs optuna only when
used, so each caller pays for what it uses.
"""

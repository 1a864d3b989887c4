"""
Benchmarks of ``sb3_ddpg_plus`` against upstream Stable-Baselines3 DDPG and TD3.

Subcommands of ``python -m benchmarks``: ``speed`` (throughput), ``run`` (env x algo x seed grid), ``report``
(tables, statistics, plots) and ``gif`` (animation of a trained agent). See ``benchmarks/results/README.md``.

What ``tuning/`` uses too (the train-and-evaluate protocol, the statistics, rl-zoo3's hyperparameters, environments,
system information and atomic writes) is the package's :mod:`sb3_ddpg_plus.experiments`; this package adds the
grid (``profiles``, ``algos``, ``runner``), the report and the speed and GIF scripts, and nothing imports it back.
"""

"""
Command line of ``python -m tuning``: ``run`` (one worker), ``report``, ``export`` and ``requeue``.

Errors a user can fix (bad storage URL, unreachable server, settings that do not match the study, unknown env)
are printed as one ``error:`` line with exit status 2, not as a traceback.
"""

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sb3_ddpg_plus.experiments.search_space import NET_ARCHS
from tuning.config import StudyConfig, StudyConfigError
from tuning.storage import (
    DEFAULT_RUNS_DIR,
    STORAGE_ENV_VAR,
    HeartbeatSettings,
    StorageError,
    make_storage,
    mask_url,
    resolve_storage_url,
    study_dir,
)

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger("tuning")

_STORAGE_HELP = (
    "where the study lives: a journal file path, sqlite:///FILE, or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB "
    f"for workers on several machines (default: ${STORAGE_ENV_VAR} if set, else runs/NAME/study.journal.log). "
    f"Prefer ${STORAGE_ENV_VAR} or PGPASSWORD/~/.pgpass over a password on the command line, which other users see in ps"
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _env_budget(text: str) -> tuple[str, int]:
    env_id, sep, steps = text.rpartition("=")
    if not sep or not env_id:
        raise argparse.ArgumentTypeError(f"expected ENV=STEPS, got {text!r}")
    return env_id, _positive_int(steps)


def _study_name(text: str) -> str:
    # The name becomes a folder under runs/, so keep it to one safe path component.
    if not text or text in (".", "..") or any(not (c.isalnum() or c in "-_.") for c in text):
        raise argparse.ArgumentTypeError(f"study names may use letters, digits, '-', '_' and '.', got {text!r}")
    return text


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--study", required=True, type=_study_name, metavar="NAME", help="study name (also the folder runs/NAME/)"
    )
    parser.add_argument("--storage", metavar="URL", default=None, help=_STORAGE_HELP)
    parser.add_argument(
        "--runs-dir",
        default=DEFAULT_RUNS_DIR,
        metavar="DIR",
        help=f"parent folder of study outputs (default: {DEFAULT_RUNS_DIR})",
    )


def build_parser() -> argparse.ArgumentParser:
    """:return: the argument parser of ``python -m tuning``"""
    parser = argparse.ArgumentParser(
        prog="python -m tuning",
        description="Optuna hyperparameter tuning of sb3_ddpg_plus.DDPGPlus across environments. "
        "Start `run` in as many processes (or machines, with a PostgreSQL --storage) as you like: they share the study.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run one worker: sample, train and score trials",
        description="Run one worker process on a study (created on first use). Each trial trains the sampled "
        "configuration on every ENV with --seeds-per-trial seeds and returns the mean normalised score "
        "(0 = random policy, 1 = reference score, tuning/reference_scores.yml).",
    )
    _add_common(run)
    run.add_argument(
        "--envs", nargs="+", required=True, metavar="ENV", help="Gymnasium ids, trained in this order (cheap first)"
    )
    run.add_argument("--n-trials", type=_positive_int, required=True, metavar="K", help="trials run by this worker")
    run.add_argument(
        "--budget", type=_positive_int, required=True, metavar="STEPS", help="training timesteps per (env, seed) run"
    )
    run.add_argument(
        "--env-budget",
        type=_env_budget,
        action="append",
        default=[],
        metavar="ENV=STEPS",
        help="train ENV for STEPS timesteps instead of --budget (repeatable); --budget still bounds the sampled "
        "buffer_size and learning_starts, and evaluations scale with the budget",
    )
    run.add_argument(
        "--seeds-per-trial",
        type=_positive_int,
        default=1,
        metavar="S",
        help="training seeds per env in each trial (default: 1)",
    )
    run.add_argument(
        "--eval-freq",
        type=_positive_int,
        default=None,
        metavar="STEPS",
        help="timesteps between evaluations (default: budget // 5)",
    )
    run.add_argument(
        "--eval-episodes",
        type=_positive_int,
        default=5,
        metavar="N",
        help="deterministic episodes per evaluation (default: 5)",
    )
    run.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="sampler seed of this worker (default: derived from host, pid and time, so concurrent workers differ; "
        "it is recorded on each trial). Training seeds always derive from the trial number",
    )
    run.add_argument(
        "--max-total-trials",
        type=_positive_int,
        default=None,
        metavar="M",
        help="stop when the study has M trials in total (complete, pruned or running), across all workers",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SEC",
        help="start no new trial after SEC seconds (the running trial is finished, not cut)",
    )
    run.add_argument(
        "--net-archs",
        nargs="+",
        choices=list(NET_ARCHS),
        default=list(NET_ARCHS),
        metavar="NAME",
        help=f"network sizes the search may use, from {', '.join(f'{k}={v}' for k, v in NET_ARCHS.items())} (default: all)",
    )
    run.add_argument(
        "--enqueue",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="YAML of search-space params (names as in trials.csv, without 'params_') to try first, e.g. a known-good "
        "configuration; skipped if the study already has a trial with these params (repeatable)",
    )
    run.add_argument(
        "--n-startup-trials", type=int, default=10, metavar="N", help="random trials before TPE is used (default: 10)"
    )
    run.add_argument(
        "--prune-warmup",
        type=float,
        default=0.25,
        metavar="FRAC",
        help="no pruning until FRAC * budget timesteps past learning_starts in each run (default: 0.25)",
    )
    run.add_argument(
        "--prune-margin",
        type=float,
        default=0.0,
        metavar="SCORE",
        help="prune a trial only when its running normalised score is below the completed trials' median at the "
        "same step by more than SCORE (default: 0.0, Optuna's median rule; a cross-task study whose first task "
        "saturates wants e.g. 0.1, so that evaluation noise prunes nothing)",
    )
    run.add_argument(
        "--floor",
        type=float,
        default=-1.0,
        metavar="SCORE",
        help="after warm-up, a normalised running score below SCORE prunes the trial as diverged "
        "(default: -1.0: worse than random by a whole random-to-reference gap)",
    )
    run.add_argument(
        "--score-window",
        type=_positive_int,
        default=3,
        metavar="N",
        help="a run scores the mean of its last N evaluations (default: 3)",
    )
    run.add_argument(
        "--references",
        type=Path,
        default=None,
        metavar="FILE",
        help="reference score table (default: tuning/reference_scores.yml)",
    )
    run.add_argument(
        "--torch-threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="torch intra-op threads (default: 1; run one worker per core)",
    )
    run.add_argument(
        "--heartbeat-interval",
        type=_positive_int,
        default=60,
        metavar="SEC",
        help="database storages: seconds between heartbeats of a running trial (default: 60)",
    )
    run.add_argument(
        "--grace-period",
        type=_positive_int,
        default=300,
        metavar="SEC",
        help="database storages: a trial without heartbeat for SEC seconds is marked FAIL and retried (default: 300)",
    )
    run.add_argument(
        "--max-retry", type=int, default=1, metavar="N", help="database storages: retries of a failed trial (default: 1)"
    )

    report = commands.add_parser(
        "report",
        help="write best.yml, trials.csv, plots and REPORT.md (re-trains the top configurations)",
        description="Write runs/NAME/{best.yml, trials.csv, *.png, REPORT.md}. REPORT.md re-trains the --top-k best "
        "configurations with --reeval-seeds fresh seeds and reports mean ± std and IQM with a 95%% bootstrap CI.",
    )
    _add_common(report)
    report.add_argument("--top-k", type=int, default=3, metavar="K", help="configurations to re-train (0: none; default: 3)")
    report.add_argument(
        "--reeval-seeds", type=_positive_int, default=5, metavar="N", help="fresh seeds per env for re-training (default: 5)"
    )
    report.add_argument(
        "--reeval-budget",
        type=_positive_int,
        default=None,
        metavar="STEPS",
        help="re-training timesteps per run (default: the study's budget of each environment)",
    )
    report.add_argument(
        "--torch-threads", type=_positive_int, default=1, metavar="N", help="torch intra-op threads (default: 1)"
    )

    export = commands.add_parser(
        "export",
        help="write the best configuration as YAML",
        description="Write a trial's hyperparameters as YAML keyed by env id, readable by "
        "sb3_ddpg_plus.hyperparams.load_hyperparams(path, env_id) and python -m sb3_ddpg_plus.zoo.",
    )
    _add_common(export)
    export.add_argument("--out", type=Path, default=None, metavar="FILE", help="output file (default: runs/NAME/best.yml)")
    export.add_argument("--trial", type=int, default=None, metavar="N", help="export this completed trial instead of the best")
    export.add_argument("--note", action="append", default=[], metavar="TEXT", help="extra header comment line (repeatable)")
    export.add_argument(
        "--default",
        action="store_true",
        help="write one `default` block (any env; the study's --budget as n_timesteps) instead of one per env: "
        "the format of sb3_ddpg_plus/hyperparams/recommended.yml",
    )
    requeue = commands.add_parser(
        "requeue",
        help="mark interrupted (RUNNING) trials FAIL and queue their parameters again",
        description="A worker killed on a storage without heartbeats (the journal file) leaves its trial RUNNING for "
        "good. Run this when no worker of the study is running: each RUNNING trial is marked FAIL and its parameters "
        "are queued, so the next worker measures them first.",
    )
    _add_common(requeue)
    requeue.add_argument(
        "--older-than",
        type=float,
        default=0.0,
        metavar="SEC",
        help="only trials started at least SEC seconds ago (default: 0, every RUNNING trial)",
    )
    return parser


def _config_from_args(args: argparse.Namespace) -> StudyConfig:
    from tuning.scoring import load_reference_scores, select_reference_scores

    table = select_reference_scores(args.envs, load_reference_scores(args.references))
    return StudyConfig(
        env_ids=tuple(args.envs),
        budget=args.budget,
        env_budgets=dict(args.env_budget),
        seeds_per_trial=args.seeds_per_trial,
        eval_freq=args.eval_freq or 0,
        eval_episodes=args.eval_episodes,
        score_window=args.score_window,
        prune_warmup=args.prune_warmup,
        floor=args.floor,
        net_archs=tuple(args.net_archs),
        references={env_id: {"random": ref.random, "reference": ref.reference} for env_id, ref in table.items()},
    )


def _command_line(argv: Sequence[str]) -> str:
    return "python -m tuning " + " ".join(shlex.quote(mask_url(arg)) for arg in argv)


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import torch

    from sb3_ddpg_plus.experiments.envs import ensure_registered
    from tuning.export import completed_trials, export_best, write_trials_csv
    from tuning.study import (
        create_or_join,
        derive_worker_seed,
        enqueue_params,
        make_pruner,
        make_sampler,
        run_worker,
        state_counts,
    )

    torch.set_num_threads(args.torch_threads)
    for env_id in args.envs:
        ensure_registered(env_id)
    config = _config_from_args(args)
    url = resolve_storage_url(args.storage, args.study, args.runs_dir)
    heartbeat = HeartbeatSettings(interval=args.heartbeat_interval, grace_period=args.grace_period, max_retry=args.max_retry)
    storage = make_storage(url, heartbeat=heartbeat)
    sampler_seed = args.seed if args.seed is not None else derive_worker_seed()
    study = create_or_join(
        args.study,
        storage,
        config,
        sampler=make_sampler(sampler_seed, args.n_startup_trials),
        pruner=make_pruner(margin=args.prune_margin),
        command=_command_line(argv),
    )
    for path in args.enqueue:
        enqueue_params(study, config, path)
    logger.info("study %r on %s; sampler seed %d; envs %s", args.study, mask_url(url), sampler_seed, ", ".join(config.env_ids))
    run_worker(study, config, args.n_trials, sampler_seed, args.max_total_trials, args.timeout)

    out_dir = study_dir(args.study, args.runs_dir)
    write_trials_csv(study, out_dir / "trials.csv")
    if completed_trials(study):
        best = export_best(study, config, out_dir / "best.yml")
        logger.info("best so far: trial %d, value %.4f -> %s", best.number, best.value, out_dir / "best.yml")
    logger.info("trials: %s; full report: python -m tuning report --study %s", state_counts(study), args.study)
    return 0


def _open_existing(args: argparse.Namespace) -> "tuple[optuna.Study, StudyConfig]":
    from tuning.study import load_existing

    url = resolve_storage_url(args.storage, args.study, args.runs_dir)
    if "://" not in url and not Path(url).exists():
        raise StorageError(
            f"no study storage at {url} (run `python -m tuning run --study {args.study} ...` first, or pass --storage)"
        )
    return load_existing(args.study, make_storage(url))


def _cmd_report(args: argparse.Namespace) -> int:
    import torch

    from tuning.report import write_report

    torch.set_num_threads(args.torch_threads)
    study, config = _open_existing(args)
    path = write_report(
        study,
        config,
        study_dir(args.study, args.runs_dir),
        top_k=args.top_k,
        n_seeds=args.reeval_seeds,
        budget=args.reeval_budget,
    )
    logger.info("wrote %s", path)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from tuning.export import export_best

    study, config = _open_existing(args)
    out = args.out or study_dir(args.study, args.runs_dir) / "best.yml"
    trial = export_best(study, config, out, trial_number=args.trial, notes=args.note, default_only=args.default)
    logger.info("trial %d (value %.4f) -> %s", trial.number, trial.value, out)
    return 0


def _cmd_requeue(args: argparse.Namespace) -> int:
    from tuning.study import load_existing, requeue_interrupted

    url = resolve_storage_url(args.storage, args.study, args.runs_dir)
    if "://" not in url and not Path(url).exists():
        raise StorageError(f"no study storage at {url} (pass --storage or --runs-dir)")
    storage = make_storage(url)
    study, _ = load_existing(args.study, storage)
    done = requeue_interrupted(study, storage, older_than_s=args.older_than)
    for number, queued in done:
        logger.info("trial %d: RUNNING -> FAIL%s", number, "; its parameters queued again" if queued else "")
    logger.info("%d interrupted trial(s) handled", len(done))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """
    :param argv: arguments (default: ``sys.argv[1:]``)
    :return: exit status
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[tuning] %(message)s")
    from sb3_ddpg_plus.experiments.envs import UnknownEnvironmentError
    from tuning.scoring import MissingReferenceError
    from tuning.study import StudyNotFoundError

    user_errors = (StorageError, StudyConfigError, StudyNotFoundError, MissingReferenceError, UnknownEnvironmentError)
    try:
        if args.command == "run":
            return _cmd_run(args, argv)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "requeue":
            return _cmd_requeue(args)
        return _cmd_export(args)
    except (*user_errors, LookupError) as error:
        # Problems the user can fix from the message alone: one line, no traceback. (LookupError: no such trial.)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

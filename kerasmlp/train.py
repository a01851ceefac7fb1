"""The run driver: `train_and_evaluate` builds a run from a config and hands it to the loops.

It loads the data, builds the model, the optimizer and the `Trainer` (whose
compiled inner loop of GradientTape steps is in `kerasmlp.trainer`), the
summaries, the checkpoints and the actions (`build_actions`), and hands them to a
`kerasmlp.controller.Controller`, which decides in ordinary Python when to log,
evaluate, checkpoint and stop; at the end the run is tested and its model saved.
A run that does not complete ends in one of the exceptions defined here
(`RunInterrupted`, `RunDiverged`, `WorkerLost`). `Trainer` and the reporters
(`kerasmlp.reporters`) are importable from here too, where they used to live.

All state a resumed run needs (model, optimizer with its iteration count, the
position in the shuffled data, dropout's RNG inside the model, the metrics'
accumulators, the loop's host counters) goes into `kerasmlp.checkpoints`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from kerasmlp import actions, diagnostics, distribute, precision
from kerasmlp.batches import HeldOutSplit, InMemoryBatches
from kerasmlp.checkpoints import RunCheckpoints
from kerasmlp.class_weights import resolve_class_weight
from kerasmlp.components import make_loss, make_optimizer
from kerasmlp.config import (
    Config,
    check_data_task,
    check_learning_rate_lasts,
    config_from_dict,
    with_absolute_paths,
)
from kerasmlp.controller import (
    DIVERGED,
    INTERRUPTED,
    STOPPED_EARLY,
    Action,
    Controller,
    StopRequest,
)
from kerasmlp.data import MAX_CACHE_BYTES, Datasets, load_config_datasets
from kerasmlp.inference import serving_model, write_data_card
from kerasmlp.model import Head, build_model
from kerasmlp.reporters import LineReporter, Reporter
from kerasmlp.runfiles import (
    CONFIG_FILE,
    METRICS_FILE,
    ResumeError,
    RunDirectoryExistsError,
    RunFilesError,
    RunStatus,
    check_run_dir,
    prepare_run_dir,
    replace_atomically,
    resuming,
    write_json_atomic,
    write_text_atomic,
)
from kerasmlp.summaries import SummaryWriter, code_block, model_summary
from kerasmlp.tables import file_sha256
from kerasmlp.trainer import AgreedStop, Trainer

__all__ = [
    "Controller",
    "LineReporter",
    "Reporter",
    "RunDiverged",
    "RunDirectoryExistsError",
    "RunInterrupted",
    "Trainer",
    "WorkerLost",
    "check_run_dir",
    "prepare_run_dir",
    "train_and_evaluate",
]


# --- the entry point ----------------------------------------------------------


class RunInterrupted(Exception):
    """A signal stopped the run after saving a checkpoint; `--resume` continues it."""

    def __init__(self, run_dir: pathlib.Path, *, step: int, epoch: int, signal_name: str):
        self.run_dir, self.step, self.epoch, self.signal_name = run_dir, step, epoch, signal_name
        super().__init__(
            f"interrupted at step {step} (epoch {epoch}); continue with: "
            f"kerasmlp-train --resume {run_dir}"
        )


class WorkerLost(Exception):
    """Another worker of a multi-worker run stopped answering (killed, crashed, unreachable).

    TensorFlow's coordination service notices the missing heartbeats within
    seconds and aborts the all-reduce the survivors wait in; this says so in one line.
    """

    def __init__(self, run_dir: pathlib.Path, error: Exception):
        self.run_dir = run_dir
        text = " ".join(str(getattr(error, "message", error)).split())
        match = re.search(r"stopped sending heartbeats\):\s*(\S+)", text) or re.search(
            r"Error reported from (/job:\w+/(?:replica:\d+/)?task:\d+)", text
        )
        who = f"task {match.group(1)}" if match else "another worker"
        self.lost = f"lost {who} of the multi-worker run ({type(error).__name__})"
        super().__init__(self.advice(run_dir))

    def advice(self, resume_dir: pathlib.Path, where: str = "") -> str:
        """The line, with the folder to resume (a sweep's, for one of its points)."""
        return (
            f"{self.lost}{where}; stop every worker, then continue from the last checkpoint "
            f"with: kerasmlp-train --resume {resume_dir} (on every worker)"
        )


class RunDiverged(Exception):
    """The loss, a gradient or a weight became NaN or infinite (see `actions.DivergenceGuard`)."""

    def __init__(self, run_dir: pathlib.Path, divergence: actions.Divergence, rollbacks: int):
        self.run_dir, self.divergence = run_dir, divergence
        # "diverged at step 9 after 2 rollbacks: ...": the advice is not what came after them.
        tried = f"after {rollbacks} rollback{'s' if rollbacks != 1 else ''}" if rollbacks else ""
        super().__init__(divergence.message(after=tried))


def train_and_evaluate(
    config: Config,
    run_dir: str | pathlib.Path,
    *,
    reporter: Reporter | None = None,
    resume: bool = False,
    stop_request: StopRequest | None = None,
    hparams_first: Sequence[str] = (),
    hparams_metrics: Sequence[tuple[str, str]] = (),
) -> dict[str, float]:
    """Trains the model a config describes and evaluates it on held-out data.

    Builds the run (data, model, optimizer, `Trainer`, summaries, checkpoints)
    and hands it to a `Controller` with one action per concern (see
    `build_actions`). Writes into `run_dir`: `config.yaml` (the resolved
    config), `status.json` (see `kerasmlp.runfiles`), TensorBoard event files
    under `train/`, `validation/` and `test/` (and the HParams session in
    `run_dir` itself), `checkpoints/`, then `model.keras` and `metrics.json`
    (and `best.keras` with `train.save_best`). Every file is replaced
    atomically.

    Args:
      config: the whole run (see `kerasmlp.config.Config`).
      run_dir: a new or empty directory; with `resume`, a run to continue from
        its latest checkpoint (its events after that checkpoint are dropped).
      reporter: receives progress; defaults to plain lines on stdout.
      resume: continue the run in `run_dir` instead of starting one.
      stop_request: when set (by a signal handler), the run stops after the
        current compiled call, saves a checkpoint and raises `RunInterrupted`.
      hparams_first: config keys (a sweep's grid keys) that TensorBoard's HParams
        tab lists first, before the keys every run shares; default none.
      hparams_metrics: the HParams tab's metric columns, (split, tag) pairs such as
        ('validation', 'accuracy'); default this run's own (validation when it
        holds one out, and test; the loss and `config.metrics`). TensorBoard takes
        the columns of one run's record for a whole folder: a sweep gives every
        point those of all its points.

    Returns:
      Final values: `train_loss`, `train_<metric>` (last epoch),
      `validation_*` (when there is a validation split), `test_*`, plus `steps`
      and `epochs` (integers), `wall_time_s` and `examples_per_second`
      (training steps only), `strategy` (the one `distribute.strategy` resolved
      to: 'one_device', 'mirrored' or 'multi_worker'), `replicas` and `workers`
      (integers: how many replicas and worker processes trained in sync) and
      `precision` (the name `train.precision` resolved to, e.g. 'float32').

    Raises:
      TypeError: `config` is not a `Config`.
      ConfigError: the config does not fit the dataset (e.g. binary
        cross-entropy on 10 classes), or holds a value `load_config` refuses
        (a `Config` changed with `dataclasses.replace` is checked here).
      DataError: the dataset cannot be found or prepared.
      RunDirectoryExistsError: `run_dir` already holds files (not with `resume`).
      ResumeError: `resume` on a folder that cannot be continued.
      RunInterrupted: `stop_request` was set; the run is saved and resumable.
      KeyboardInterrupt: Ctrl-C without a handler (a notebook); status.json says
        `interrupted`, and `resume` goes on from the last checkpoint.
      RunDiverged: the divergence guard stopped the run (exit status 3 in the CLI).
      RunFilesError: a file of the run could not be written (disk full, ...).

    With `config.distribute` naming a strategy, the model, optimizer and
    training metrics live in its scope, `train.batch_size` is the global batch,
    and only the chief writes `run_dir` (see `kerasmlp.distribute`).
    """
    if not isinstance(config, Config):
        raise TypeError(
            "config must be a kerasmlp.Config (kerasmlp.load_config makes one). "
            f"Received: {type(config).__name__}"
        )
    # A Config made with dataclasses.replace skipped load_config's checks: a negative rate
    # trained uphill and wrote a config.yaml that load_run then refused.
    config = config_from_dict(config.to_dict())
    reporter = reporter or LineReporter()
    # Not `or`: a StopRequest not yet set is falsy, and the caller's must be the one read.
    stop_request = stop_request if stop_request is not None else StopRequest()
    run_dir = pathlib.Path(run_dir)
    # Before anything else touches TensorFlow's devices (see kerasmlp.distribute).
    distribute.configure_cpu_devices(config.distribute.cpu_devices)
    strategy = distribute.make_strategy(config.distribute)
    role = distribute.strategy_role(strategy)
    distribute.check_batch_size(config.train.batch_size, role.replicas)
    if strategy is not None:
        _message_of(reporter)(role.describe())
    for line in distribute.unused_settings(config.distribute, role, os.environ):
        _message_of(reporter)(line)
    try:
        # All but the folder, the resume and the checkpoint's state it continues from.
        train = functools.partial(
            _train,
            config,
            role=role,
            strategy=strategy,
            reporter=reporter,
            stop_request=stop_request,
            hparams_first=hparams_first,
            hparams_metrics=hparams_metrics,
        )
        if not role.is_chief:
            # Only the chief writes the run folder; the others write the same files
            # (their checkpoints too) into a temporary folder, removed at the end.
            return _train_as_worker(train, run_dir, role.worker, resume)
        if not resume:
            check_run_dir(run_dir)
            return train(run_dir, resume=False, previous=None)
        with resuming(run_dir) as previous:  # held until the run ends: one --resume at a time
            return train(run_dir, resume=True, previous=previous)
    except (tf.errors.UnavailableError, RunFilesError) as e:
        lost = peer_loss(e)
        if role.workers == 1 or lost is None:
            raise
        raise WorkerLost(run_dir, lost) from e


def peer_loss(error: Exception) -> tf.errors.UnavailableError | None:
    """The `UnavailableError` of a lost peer behind `error`, or None.

    Under `MultiWorkerMirroredStrategy` a checkpoint's save runs collectives too: a
    worker lost while the chief writes one aborts the write, which
    `RunCheckpoints.save` reports as a `RunFilesError` ("cannot write a checkpoint")
    caused by the `UnavailableError`. The files were never the trouble.
    """
    lost = error if isinstance(error, tf.errors.UnavailableError) else error.__cause__
    return lost if isinstance(lost, tf.errors.UnavailableError) else None


def _train_as_worker(train, run_dir: pathlib.Path, worker: int, resume: bool):
    """`train` (`_train` with the run's arguments bound) in a temporary folder of its own."""
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"kerasmlp-worker{worker}-"))
    try:
        if resume:
            # Every worker restores the chief's latest checkpoint (a shared folder).
            chief_checkpoints = run_dir / "checkpoints"
            if chief_checkpoints.is_dir():
                shutil.copytree(chief_checkpoints, work_dir / "checkpoints")
        return train(work_dir, resume=resume, previous=None)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def data_fingerprint(config: Config) -> dict[str, str]:
    """The sha256 of each of the run's own data files, by key (`data.path`, `data.test_path`).

    A run records it in `status.json`; `--resume` (and `kerasmlp-predict --split test`,
    `LoadedRun.read_test_split`) refuse a file changed since, which split and scaled
    again would give other rows than the run trained (and was tested) on.
    """
    paths = {"data.path": config.data.path, "data.test_path": config.data.test_path}
    return {key: file_sha256(path) for key, path in paths.items() if path}


def _check_data_unchanged(run_dir, previous: Mapping | None, fingerprint: dict[str, str]) -> None:
    recorded = (previous or {}).get("data_sha256") or {}  # runs of earlier versions: none
    for key, digest in recorded.items():
        if fingerprint.get(key) not in (None, digest):
            raise ResumeError(
                f"--resume {run_dir}: {key} has changed since the run began (its sha256 "
                "differs): split and scaled again it would give other rows than the run "
                "trained on. Restore the file, or start a new run on it with -c"
            )


def _train(
    config,
    run_dir,
    role,
    strategy,
    reporter,
    stop_request,
    resume,
    previous,
    hparams_first,
    hparams_metrics,
):
    keras.utils.set_random_seed(config.seed)
    data = load_config_datasets(config)
    fingerprint = data_fingerprint(config)
    if resume:
        _check_data_unchanged(run_dir, previous, fingerprint)
    if data.tabular is not None:
        _message_of(reporter)(data.tabular.describe())
        for line in data.tabular.notes:
            _message_of(reporter)(line)
        check_data_task(config, data.info.task, data.tabular.labels.why)
    check_learning_rate_lasts(
        config, config.train.epochs * math.ceil(data.info.num_train / config.train.batch_size)
    )
    chosen = precision.resolve_precision(
        config.train.precision,
        precision.largest_layer_weights(data.info.input_dim, config.model.hidden_units),
    )
    if chosen.dtype_policy is not None:  # float32 is silent, as one device is
        _message_of(reporter)(chosen.describe())
    # The run's config.yaml, HParams and a resume hold what was chosen, not `auto`:
    # the same run on other hardware, or resumed there, trains in the same precision.
    # Its data paths are absolute: read again from another folder, they name the same files
    # (the data was read with them as given, which the messages above name).
    config = dataclasses.replace(
        with_absolute_paths(config), train=dataclasses.replace(config.train, precision=chosen.name)
    )
    head = Head.for_task(
        data.info.task, num_classes=data.info.num_classes, loss_name=config.loss.name
    )
    scale = None
    if config.train.on_divergence == "rollback":
        scale = tf.Variable(1.0, trainable=False, name="learning_rate_scale")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = model_for(config, data.info, head, dtype_policy=chosen.dtype_policy)
        optimizer = make_optimizer(
            config.optimizer, learning_rate_scale=scale, loss_scaling=chosen.loss_scaling
        )
    # Builds the metrics too: refuses e.g. top5_accuracy on 2 classes before any file is written.
    # The trainer enters the strategy's scope for what trains (see `Trainer`).
    trainer = Trainer(
        model,
        make_loss(config.loss),
        optimizer,
        head=head,
        metric_names=config.metrics,
        class_weight=_class_weight(config, data),
        strategy=strategy,
    )
    # Only now that the data and the config fit, so a refused run leaves no folder behind.
    if not resume:
        run_dir = prepare_run_dir(run_dir)
    status = RunStatus(run_dir, previous)

    def begin() -> None:
        write_text_atomic(run_dir / CONFIG_FILE, config.to_yaml())
        own_data = {"data_sha256": fingerprint} if fingerprint else {}
        status.update(
            "running",
            epochs=config.train.epochs,
            strategy=role.strategy,
            replicas=role.replicas,
            workers=role.workers,
            **own_data,
        )

    try:
        if not resume:
            begin()  # a resumed run begins once its checkpoint is restored and fits
        return _run(
            config,
            run_dir,
            data=data,
            head=head,
            trainer=trainer,
            scale=scale,
            status=status,
            reporter=reporter,
            stop_request=stop_request,
            resume=resume,
            role=role,
            hparams_first=hparams_first,
            hparams_metrics=hparams_metrics,
            begin=begin,
        )
    except (RunInterrupted, RunDiverged):
        raise
    except BaseException as e:
        # A resumed run refused before it began (its checkpoint cannot be read or does
        # not fit, --epochs too few) is left as it was: nothing of it was written.
        if status.record.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                if isinstance(e, KeyboardInterrupt):
                    # Ctrl-C where no handler asks for a stop (a notebook, a script): the
                    # user's interrupt, not a failure; --resume goes on from the last checkpoint.
                    status.update("interrupted", signal="SIGINT")
                else:
                    error = " ".join(f"{type(e).__name__}: {e}".split())[:500]
                    status.update("failed", error=error)
        raise


def _run(
    config,
    run_dir,
    *,
    data,
    head,
    trainer,
    scale,
    status,
    reporter,
    stop_request,
    resume,
    role,
    hparams_first=(),
    hparams_metrics=(),
    begin=lambda: None,
):
    data = _held_out_in_memory(data, config)
    info, train_cfg, model = data.info, config.train, trainer.model
    batches = _training_batches(data, config)
    has_validation = data.validation is not None
    writer = SummaryWriter(run_dir)
    best_weights = None
    if train_cfg.early_stopping.monitor and train_cfg.early_stopping.restore_best:
        best_weights = actions.BestWeights(model)
    objects = checkpoint_objects(trainer, batches, scale=scale, best_weights=best_weights)
    checkpoints = RunCheckpoints(
        run_dir / "checkpoints",
        objects,
        keep=train_cfg.keep_checkpoints,
        writer=writer,
        log=_message_of(reporter),
    )
    guard = build_divergence_guard(
        config, trainer.optimizer, info, scale=scale, writer=writer, log=_message_of(reporter)
    )
    action_list = build_actions(
        config,
        run_dir,
        data,
        trainer,
        batches,
        writer,
        status,
        reporter,
        guard,
        best_weights,
        workers=role.workers,
    )
    # With several workers, the stop a signal asks for is agreed in the compiled call.
    agreed = AgreedStop(stop_request) if role.workers > 1 else None
    controller = Controller(
        trainer.bind(batches, agreed),
        epochs=train_cfg.epochs,
        steps_per_epoch=math.ceil(info.num_train / train_cfg.batch_size),
        log_every_steps=train_cfg.log_every_steps,
        actions=action_list,
        checkpoints=checkpoints,
        stop_request=agreed if agreed is not None else stop_request,
    )
    state = checkpoints.restore_latest() if resume else None
    if state is not None:
        controller.load_state_dict(state)
        controller.last_checkpoint_step = controller.step
        _check_epochs_cover(controller, run_dir)
    if resume:
        begin()
    if state is not None:
        # As it is now: `--epochs` or `--strategy` changed the config the run began with.
        writer.restate(config.flatten(), config_text=code_block(config.to_yaml()))
    if state is not None and has_validation and controller.finished_epochs:
        _validate_new_last_epoch(controller, action_list)
    if state is None:
        if resume:  # killed before its first checkpoint: start again in the same folder
            writer.truncate_after(0.0)
        _write_run_start(
            writer,
            config,
            model,
            has_validation=has_validation,
            hparams_first=hparams_first,
            hparams_metrics=hparams_metrics,
        )

    reason = controller.train()
    step, epoch = controller.step, controller.epoch
    if reason == INTERRUPTED:
        raise _end_interrupted(run_dir, controller, writer, status, stop_request)
    if reason == DIVERGED:
        raise _end_diverged(run_dir, controller, writer, status, guard)

    # Completed, or stopped early: evaluate on the test split and save the model.
    results = dict(_find(action_list, actions.EpochLogs).last)
    stopped = _find(action_list, actions.EarlyStopping)
    if has_validation and stopped is not None and stopped.restored:
        # The model tested and saved holds the best epoch's weights, not the last
        # epoch's: so do the validation values returned. TensorBoard's validation
        # curves (and the HParams columns read from them) end at the last epoch.
        validation_logs = trainer.evaluate(data.validation)
        results.update({f"validation_{k}": v for k, v in validation_logs.items()})
    test_logs = trainer.evaluate(data.test)
    writer.scalars("test", step, test_logs)
    if not has_validation and train_cfg.image_every_epochs:
        probe = _find(action_list, actions.LayerReports).probe
        for tag, image in diagnostics.render_images(probe, data.test, info).items():
            writer.image("test", step, tag, image)
    writer.hparams_end(step)
    writer.close()
    results.update({f"test_{k}": v for k, v in test_logs.items()})
    results.update(
        steps=step,
        epochs=epoch,
        wall_time_s=controller.train_time,
        examples_per_second=controller.examples_seen / max(controller.train_time, 1e-9),
        strategy=role.strategy,
        replicas=role.replicas,
        workers=role.workers,
        precision=config.train.precision,
    )
    # For your own table, the saved model is preprocessing + MLP, on the raw columns.
    saved = serving_model(model, data)
    replace_atomically(run_dir / "model.keras", lambda path: saved.save(path))
    write_data_card(run_dir, data, head)
    write_json_atomic(run_dir / METRICS_FILE, results)
    status.update(
        "completed",
        step=step,
        epoch=epoch,
        stopped_early=reason == STOPPED_EARLY,
        **(
            {"stopped_epoch": stopped.stopped_epoch + 1}
            if stopped and stopped.stopped_epoch
            else {}
        ),
    )
    reporter.end(results)
    return results


def _write_run_start(
    writer: SummaryWriter,
    config: Config,
    model: keras.Model,
    *,
    has_validation: bool,
    hparams_first: Sequence[str],
    hparams_metrics: Sequence[tuple[str, str]],
) -> None:
    """The events a new run begins with: its config and model summary, and its HParams record.

    `hparams_first` and `hparams_metrics` are `train_and_evaluate`'s; without
    `hparams_metrics`, the columns are the loss and `config.metrics` of validation
    (when the run holds it out) and test.
    """
    writer.text("train", 0, "config", code_block(config.to_yaml()))
    writer.text("train", 0, "model_summary", code_block(model_summary(model)))
    writer.hparams(
        config.flatten(),
        metrics=list(hparams_metrics)
        or [
            (split, tag)
            for split in (("validation", "test") if has_validation else ("test",))
            for tag in ("loss", *config.metrics)
        ],
        first=hparams_first,
    )


def _end_interrupted(
    run_dir: pathlib.Path,
    controller: Controller,
    writer: SummaryWriter,
    status: RunStatus,
    stop_request: StopRequest,
) -> RunInterrupted:
    """Closes the events of a run a signal stopped, records it in status.json and
    returns the `RunInterrupted` to raise."""
    step, epoch = controller.step, controller.epoch
    # No HParams session end: see `SummaryWriter.hparams_end`.
    writer.close()
    in_progress = epoch + (1 if controller.step_in_epoch else 0)
    status.update("interrupted", step=step, epoch=epoch, signal=stop_request.signal_name)
    return RunInterrupted(
        run_dir, step=step, epoch=in_progress, signal_name=stop_request.signal_name or ""
    )


def _end_diverged(
    run_dir: pathlib.Path,
    controller: Controller,
    writer: SummaryWriter,
    status: RunStatus,
    guard: actions.DivergenceGuard,
) -> RunDiverged:
    """Ends the HParams session of a run the divergence guard stopped as a failure,
    records the divergence in status.json and returns the `RunDiverged` to raise."""
    step, epoch = controller.step, controller.epoch
    writer.hparams_end(step, status="failure")
    writer.close()
    divergence = guard.divergence
    status.update(
        "diverged",
        step=step,
        epoch=epoch,
        divergence={
            "step": divergence.step,
            "what": divergence.what,
            "learning_rate": divergence.learning_rate,
        },
    )
    return RunDiverged(run_dir, divergence, guard.rollbacks)


def _validate_new_last_epoch(controller: Controller, action_list: Sequence[Action]) -> None:
    """Validates the epoch a run resumed with `--epochs N` ends at, when it was not validated.

    At the end of epoch N, which `train.eval_every_epochs` skipped (it was not the last
    then), the run is over: its last epoch is validated all the same, before the weights
    are restored or tested, and the actions that read the validation (early stopping and
    its best weights, `save_best`, the last logs) hear it at that epoch's end, as in the
    run of N epochs. The rest of that epoch end is in the checkpoint or drawn again.
    """
    logs = dict(_find(action_list, actions.EpochLogs).last)
    if any(key.startswith("validation_") for key in logs):
        return
    readers = (actions.Evaluate, actions.EpochLogs, actions.EarlyStopping, actions.SaveBest)
    for action in action_list:
        if isinstance(action, readers):
            action.on_epoch_end(controller, logs)


def _check_epochs_cover(controller: Controller, run_dir: pathlib.Path) -> None:
    """Refuses `--resume --epochs N` of a run that has trained past epoch N.

    Its model would be tested and saved as N epochs' while it holds more steps
    (and its last validation would be older than its test).
    """
    if controller.step <= controller.epochs * controller.steps_per_epoch:
        return
    begun = controller.epoch + (1 if controller.step_in_epoch else 0)
    raise ResumeError(
        f"--resume {run_dir} --epochs {controller.epochs}: the run has already trained past "
        f"epoch {controller.epochs} ({controller.step} steps of {controller.steps_per_epoch} "
        f"an epoch, in epoch {begun}); --epochs must be at least {begun}"
    )


def build_divergence_guard(
    config: Config,
    optimizer: keras.optimizers.Optimizer,
    info,
    *,
    scale: tf.Variable | None,
    writer: SummaryWriter,
    log: Callable[[str], None],
) -> actions.DivergenceGuard:
    """The run's divergence guard, as `train.on_divergence` and its keys set it up.

    Args:
      config: the run's config (its `train` section, the loss and the precision).
      optimizer: the run's optimizer; its schedule gives the learning rate the guard reports.
      info: the dataset's `DatasetInfo` (its regression target's variance, for the advice).
      scale: the learning-rate scale a rollback lowers (`on_divergence: rollback`), or None.
      writer: the run's summaries.
      log: where the guard's one-line messages go.
    """
    train_cfg = config.train

    def rate_at(iteration) -> float:
        """The schedule (times the rollback scale) at an optimizer iteration."""
        return float(_schedule(optimizer)(iteration))

    return actions.DivergenceGuard(
        policy=train_cfg.on_divergence,
        factor=train_cfg.rollback_factor,
        max_rollbacks=train_cfg.max_rollbacks,
        scale=scale,
        writer=writer,
        log=log,
        rate_at=rate_at,  # only on divergence, at the bad step
        # At the optimizer's iterations, as the compiled loop reads it for
        # train/learning_rate (skipped mixed_float16 steps are not iterations).
        rate_now=lambda: rate_at(optimizer.iterations),
        advice=actions.large_target_advice(
            config.loss.name, info.target_variance, config.train.precision
        ),
    )


def build_actions(
    config,
    run_dir,
    data,
    trainer,
    batches,
    writer,
    status,
    reporter,
    guard,
    best_weights,
    *,
    workers: int = 1,
) -> list[Action]:
    """The run's actions, in the order each hook calls them (see `kerasmlp.controller`).

    The guard comes first, so nothing is logged from a diverged round; evaluation
    before the actions that read `validation_*`; the progress line after them; the
    checkpoint after every action with a decision to keep. The layer reports and
    pictures come after the checkpoint: they keep no state, and their drawing on
    the writer's thread then overlaps the next epoch's training instead of holding
    up the checkpoint (which waits for earlier drawing: see `SummaryWriter.flush`).
    A run restored to that checkpoint drops the events written after it and
    draws them again (`Action.on_restore`).
    """
    train_cfg, info = config.train, data.info
    has_validation = data.validation is not None
    probe = diagnostics.ModelProbe(trainer.model, trainer.total_loss, trainer.head)
    probe_batch = _first_batch(data.validation if has_validation else data.test)
    metrics = {metric.name: metric for metric in trainer.eval_metrics}
    result: list[Action] = [
        guard,
        actions.Graph(
            lambda: (
                trainer.train_loop.get_concrete_function(
                    batches, tf.constant(1, dtype=tf.int32)
                ).graph
            ),
            writer,
        ),
        actions.TrainScalars(writer),
    ]
    if has_validation:
        result.append(
            actions.Evaluate(
                lambda: trainer.evaluate(data.validation), writer, train_cfg.eval_every_epochs
            )
        )
    result.append(actions.EpochLogs())
    stopping = train_cfg.early_stopping
    if stopping.monitor:
        mode = stopping.mode
        if mode == "auto":
            mode = actions.monitor_direction(stopping.monitor, metrics)
        result.append(
            actions.EarlyStopping(
                stopping.monitor,
                mode,
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                best_weights=best_weights,
                log=_message_of(reporter),
            )
        )
    if train_cfg.save_best:
        result.append(
            actions.SaveBest(
                train_cfg.save_best,
                actions.monitor_direction(train_cfg.save_best, metrics),
                run_dir / "best.keras",
                serving_model(trainer.model, data),  # raw columns for your own table
                status,
            )
        )
    result.append(actions.Progress(reporter))
    if trainer.loss_scaling:
        result.append(actions.SkippedSteps(_message_of(reporter)))
    # With several workers, checkpoints follow epochs and stops only: a wall-clock
    # trigger would fire at different steps on different workers, and a rollback
    # must restore the same checkpoint everywhere.
    every_seconds = train_cfg.checkpoint_every_seconds if workers == 1 else 0.0
    result.append(actions.Checkpoint(every_seconds, status))
    every_histogram = train_cfg.histogram_every_epochs
    result.append(actions.LayerReports(probe, probe_batch, writer, every_histogram))
    if has_validation and train_cfg.image_every_epochs:
        result.append(
            actions.Images(
                probe, data.validation, info, "validation", writer, train_cfg.image_every_epochs
            )
        )
    if train_cfg.profile_steps:
        result.append(actions.Profile(run_dir / "train", train_cfg.profile_steps, train_cfg.epochs))
    return result


def _first_batch(dataset: tf.data.Dataset):
    """The first batch of a split, whose pass is then read to its end.

    The splits are cached in memory (`dataset.cache()`). An iterator left after
    one batch leaves TensorFlow a partly written cache, and that part has been
    seen to become the whole split: one run in eight under load then evaluated
    `validation_*` on its first 64 of 400 examples at every epoch (and a resumed
    run, whose first pass was complete, disagreed with it). Reading the pass to
    its end completes the cache, as the first evaluation would.
    """
    batches = iter(dataset)
    first = next(batches)
    for _ in batches:
        pass
    return first


def _training_batches(data: Datasets, config: Config):
    """The split as tensors with a seeded permutation when it fits in memory, else tf.data."""
    if data.train_fits_in_memory and data.train_examples is not None:
        features, labels = data.train_examples.batch(data.info.num_train).get_single_element()
        return InMemoryBatches(
            features, labels, batch_size=config.train.batch_size, seed=config.seed
        )
    return iter(data.train.repeat())


def _held_out_in_memory(data: Datasets, config: Config) -> Datasets:
    """Validation and test as tensors (`HeldOutSplit`) when they fit, as the training split."""
    if not config.data.cache:
        return data

    def held_out(dataset, count):
        if dataset is None or count * data.info.input_dim * 4 > MAX_CACHE_BYTES:
            return dataset
        return HeldOutSplit.from_dataset(dataset, batch_size=config.train.batch_size)

    return dataclasses.replace(
        data,
        validation=held_out(data.validation, data.info.num_validation),
        test=held_out(data.test, data.info.num_test),
    )


def checkpoint_objects(trainer: Trainer, batches, *, scale=None, best_weights=None) -> dict:
    """Everything of a run's device state that a checkpoint must hold, by name."""
    objects = {
        "model": trainer.model,
        # Dropout's RNG state (a SeedGenerator variable) is not among the objects
        # that tf.train.Checkpoint finds through a Keras 3 model: list every variable.
        "model_variables": list(trainer.model.variables),
        "optimizer": trainer.optimizer,
        "batches": batches,
        "metrics": trainer.metric_variables,
    }
    if scale is not None:
        objects["learning_rate_scale"] = scale
    if best_weights is not None:
        objects["best_weights"] = best_weights.variables
    return objects


def _schedule(optimizer: keras.optimizers.Optimizer):
    """The learning-rate schedule (a LossScaleOptimizer's is its inner optimizer's)."""
    return getattr(optimizer, "inner_optimizer", optimizer)._learning_rate


def _message_of(reporter) -> Callable[[str], None]:
    """The reporter's `message`, or print for a reporter written before it existed."""
    return getattr(reporter, "message", print)


def _find(items, cls):
    return next((item for item in items if isinstance(item, cls)), None)


def _class_weight(config: Config, data: Datasets):
    """`train.class_weight` per class id (counting the training labels for 'balanced')."""
    setting = config.train.class_weight
    if setting is None or setting == "none" or data.info.task != "classification":
        return None
    labels = None
    if setting == "balanced":
        labels = np.concatenate([y.numpy() for _, y in data.train_examples.batch(65536)])
    return resolve_class_weight(setting, class_names=data.info.class_names, labels=labels)


def model_for(config: Config, info, head: Head, *, dtype_policy: str | None = None):
    """The run's model for a dataset: `build_model` on `config.model` with what `info` says.

    Args:
      config: the run's config (its model section and seed).
      info: the dataset's `DatasetInfo`: raw images come with their shape, dtype and
        scale (the model scales and flattens them), your own regression target with
        its training mean and variance (the head learns it standardized).
      head: the output head (`Head.for_task`).
      dtype_policy: the hidden layers' Keras dtype policy; None for float32.
    """
    return build_model(
        config.model,
        input_dim=info.input_dim,
        head=head,
        seed=config.seed,
        input_shape=info.input_shape,
        input_dtype=info.input_dtype,
        input_scale=info.input_scale,
        target_mean=info.target_mean,
        target_variance=info.target_variance,
        dtype_policy=dtype_policy,
    )

"""Tests for kerasmlp.sweep: reading the grid, naming points, checking configs, the --sweep CLI."""

import json

import pytest
import yaml
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from kerasmlp import plans, sweep
from kerasmlp.config import Config, ConfigError, load_config, parse_yaml
from tests import events
from tests.conftest import REPO_ROOT, invoke_train


def write(tmp_path, text, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_points_vary_the_last_key_fastest():
    grid = {"a": [1, 2], "b": ["x", "y", "z"]}
    points = sweep.grid_points(grid)
    assert len(points) == 6
    assert points[:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}]


def test_point_overrides_round_trip_through_yaml():
    point = {"model.hidden_units": [64, 32], "model.activation": "tanh", "x.flag": True}
    assert sweep.point_overrides(point) == [
        "model.hidden_units=[64, 32]",
        "model.activation=tanh",
        "x.flag=true",
    ]
    # Strings that kerasmlp's YAML would read as numbers or booleans are quoted.
    looks_alike = {"data.label": "1e3", "a.b": "true", "c.d": "0123"}
    overrides = sweep.point_overrides(looks_alike)
    assert overrides == ["data.label='1e3'", "a.b='true'", "c.d='0123'"]
    for item, value in zip(overrides, looks_alike.values(), strict=True):
        assert parse_yaml(item.partition("=")[2], source="t") == value


def test_run_names_are_short_plain_and_unique():
    name = sweep.run_name(
        3, {"model.hidden_units": [64, 32], "optimizer.learning_rate.initial_learning_rate": 0.003}
    )
    assert name == "03-hidden_units=64x32,initial_learning_rate=0.003"
    # Two keys ending alike keep their full paths; odd characters become '_'.
    name = sweep.run_name(0, {"a.name": "x/y", "b.name": "../z"})
    assert name == "00-a.name=x_y,b.name=__z"
    assert "/" not in name and ".." not in name


def test_run_names_of_mapping_values_read_as_key_value_pairs():
    # As YAML ({spiral_a: 2.0}) the name was `02-class_weight=_spiral_a_2.0`, and a second
    # entry came after a comma, as a second swept key does.
    point = {"train.class_weight": {"spiral_a": 2.0, "spiral_b": 0.5}, "seed": 1}
    assert sweep.run_name(2, point) == "02-class_weight=spiral_a-2.0+spiral_b-0.5,seed=1"
    assert sweep.run_name(0, {"x.y": {"a b": [1, 2], 3: {"c": None}}}) == "00-y=a_b-1x2+3-c-null"
    # Scalars and lists keep their names: a sweep planned before goes on under them.
    assert sweep.run_name(1, {"train.class_weight": "balanced"}) == "01-class_weight=balanced"


def test_run_names_sort_in_grid_order_past_100_points():
    # '100-seed=100' sorted between '10-seed=10' and '11-seed=11' as text (ls, sorted()).
    names = [run.name for run in sweep.plan_sweep({"seed": list(range(101))})]
    assert names[:2] == ["000-seed=0", "001-seed=1"] and names[-1] == "100-seed=100"
    assert sorted(names) == names
    assert [run.name for run in sweep.plan_sweep({"seed": [1, 2]})] == ["00-seed=1", "01-seed=2"]


def test_long_run_names_keep_the_key_value_parts_that_fit():
    point = {
        "model.hidden_units": [64, 32],
        "optimizer.learning_rate.initial_learning_rate": 0.003,
        "model.activation": "leaky_relu",
        "train.batch_size": 128,
    }
    name = sweep.run_name(12, point)
    # 49 characters hold the first two parts; the third would make 76 > MAX_NAME (64).
    assert name == "12-hidden_units=64x32,initial_learning_rate=0.003"
    assert len(sweep.run_name(0, {"a": "x" * 300})) == sweep.MAX_NAME


def test_a_cut_run_name_ends_tidily_and_an_uncut_one_keeps_its_ending():
    # Cut at 64 characters, a mapping's name ended in the `+` before its fifth entry.
    weights = {f"class_{i}": 1.5 for i in range(8)}
    name = sweep.run_name(0, {"train.class_weight": weights})
    # By hand: 4 entries `class_i-1.5` and their `+`s take 3 + 13 + 4 * 12 - 1 = 63.
    assert name == "00-class_weight=class_0-1.5+class_1-1.5+class_2-1.5+class_3-1.5"
    # Cut mid-entry (`...+class_3-1` of class_3-1.25): back to the last whole entry.
    name = sweep.run_name(0, {"train.class_weight": {f"class_{i}": 1.25 for i in range(8)}})
    assert name == "00-class_weight=class_0-1.25+class_1-1.25+class_2-1.25"
    # Cut after a key's `-` (`00-w=` and 58 `a`s are 63 characters): the `-` goes too.
    name = sweep.run_name(0, {"x.w": {"a" * 58: 1, "b": 2}})
    assert name == "00-w=" + "a" * 58
    # Not cut: the value's own `+` stays (names of sweeps planned before stay the same).
    assert sweep.run_name(1, {"x.w": "a+"}) == "01-w=a+"
    # Still one name per point: the index comes first.
    other = {**weights, "class_7": 2.0}  # differs after the cut
    names = [run.name for run in sweep.plan_sweep({"train.class_weight": [weights, other]})]
    assert names[0][3:] == names[1][3:] and len(set(names)) == 2


@pytest.mark.parametrize(
    "metric,direction",
    [
        ("validation_loss", "min"),
        ("test_mse", "min"),
        ("train_mae", "min"),
        ("validation_rmse", "min"),
        ("test_ece", "min"),
        ("validation_accuracy", "max"),
        ("test_macro_f1", "max"),
        ("test_top5_accuracy", "max"),
    ],
)
def test_metric_direction(metric, direction):
    assert sweep.metric_direction(metric) == direction


def test_rank_points_best_first_ties_share_a_rank_missing_values_last():
    results = {
        "00-a": {"validation_loss": 0.5},
        "01-b": None,  # no metrics.json
        "02-c": {"validation_loss": 0.25},
        "03-d": {"validation_loss": 0.5},
        "04-e": {"validation_loss": None},  # a NaN, written as null
    }
    ranked = sweep.rank_points(results, "validation_loss")
    assert [(p.rank, p.name, p.value) for p in ranked] == [
        (1, "02-c", 0.25),
        (2, "00-a", 0.5),
        (2, "03-d", 0.5),
        (None, "01-b", None),
        (None, "04-e", None),
    ]
    # Higher is better for accuracy: the order turns around.
    ranked = sweep.rank_points({"x": {"a_accuracy": 0.1}, "y": {"a_accuracy": 0.9}}, "a_accuracy")
    assert [p.name for p in ranked] == ["y", "x"]


def test_summary_table_is_fixed_width_and_greppable():
    results = {
        "00-activation=relu": {"validation_accuracy": 0.883, "test_accuracy": 0.871},
        "01-activation=tanh": {"validation_accuracy": 0.955, "test_accuracy": 0.94704},
        "02-activation=gelu": None,
    }
    assert sweep.summary_table(results, "validation_accuracy") == (
        "sweep | 3 points ranked by validation_accuracy (higher is better)\n"
        "sweep | rank | validation_accuracy | test_accuracy | run\n"
        "sweep |    1 |              0.9550 |        0.9470 | 01-activation=tanh\n"
        "sweep |    2 |              0.8830 |        0.8710 | 00-activation=relu\n"
        "sweep |    - |                   - |             - | 02-activation=gelu\n"
    )


def test_sweep_metric_default_and_did_you_mean():
    with_validation = load_config(None, ["metrics=[accuracy, macro_f1]"])
    without = load_config(None, ["train.validation_fraction=0"])
    assert sweep.check_sweep_metric(None, [with_validation]) == "validation_accuracy"
    assert sweep.check_sweep_metric(None, [with_validation, without]) == "test_accuracy"
    assert sweep.check_sweep_metric("test_macro_f1", [with_validation]) == "test_macro_f1"
    with pytest.raises(
        ConfigError,
        match=r"^Unknown metric 'validation_acuracy' \(--sweep-metric\)\. "
        r"Did you mean 'validation_accuracy'\? Allowed: train_loss, ",
    ):
        sweep.check_sweep_metric("validation_acuracy", [with_validation])
    with pytest.raises(ConfigError, match="Unknown metric 'validation_loss'"):
        sweep.check_sweep_metric("validation_loss", [without])


def test_sweep_metric_must_be_written_by_every_point():
    # A grid over train.validation_fraction: [0, 0.1] ranked by validation_loss was
    # accepted, and the point without a validation split came last, unranked ("-").
    without = load_config(None, ["train.validation_fraction=0"])
    with_validation = load_config(None, [])
    with pytest.raises(
        ConfigError,
        match=r"^--sweep-metric validation_loss is not written by every point: sweep point 0 "
        r"\(no validation split, or not in its metrics\) would have no value\. "
        r"Allowed: train_loss, train_accuracy, test_loss, test_accuracy$",
    ):
        sweep.check_sweep_metric("validation_loss", [without, with_validation])
    # metrics: [[macro_f1], [accuracy]]: neither metric is everyone's; the default is the loss.
    f1, accuracy = (load_config(None, [f"metrics=[{m}]"]) for m in ("macro_f1", "accuracy"))
    with pytest.raises(ConfigError, match=r"sweep point 1 \("):
        sweep.check_sweep_metric("test_macro_f1", [f1, accuracy])
    assert sweep.check_sweep_metric(None, [f1, accuracy]) == "validation_loss"


def test_plan_sweep_checks_every_point_before_any_run():
    runs = sweep.plan_sweep({"model.activation": ["relu", "tanh"]}, None, ["train.epochs=2"])
    assert [r.config.model.activation for r in runs] == ["relu", "tanh"]
    assert all(r.config.train.epochs == 2 for r in runs)
    with pytest.raises(
        ConfigError,
        match=r"sweep point 1 \(model.activation=rleu\): Unknown activation 'rleu'.*'relu'",
    ):
        sweep.plan_sweep({"model.activation": ["relu", "rleu"]})


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"seed": [1, 1]}, r"sweep points 0 \(seed=1\) and 1 \(seed=1\) give the same config"),
        # 1e-2 is 0.01; the base config's seed is 0 already.
        ({"optimizer.learning_rate.initial_learning_rate": [0.01, 1e-2]}, "points 0 .* and 1"),
        ({"seed": [0, 1], "train.epochs": [2, 2]}, r"points 0 \(seed=0, train.epochs=2\)"),
        # null is adamw's Keras default, 0.004 (keras.optimizers.AdamW); adam's is no decay.
        (
            {"optimizer.name": ["adamw"], "optimizer.weight_decay": [None, 0.004]},
            r"points 0 \(.*weight_decay=null\) and 1 \(.*weight_decay=0.004\)",
        ),
        ({"optimizer.weight_decay": [None, 0.0]}, r"points 0 .* and 1"),
    ],
    ids=[
        "a-value-twice",
        "one-number-written-twice",
        "a-key-of-one-value-twice",
        "adamw-weight-decay-null-and-its-default",
        "adam-weight-decay-null-and-none",
    ],
)
def test_two_points_of_one_config_are_refused(grid, message):
    with pytest.raises(ConfigError, match=message):
        sweep.plan_sweep(grid)


def test_a_multi_worker_sweep_keeps_one_distribute_setting():
    # Each worker process runs every point under the one strategy it makes.
    sweep.plan_sweep({"seed": [1, 2]}, None, ["distribute.strategy=multi_worker"])
    sweep.plan_sweep({"distribute.strategy": ["one_device", "mirrored"]})  # no multi_worker
    with pytest.raises(
        ConfigError,
        match=r"cannot vary distribute.cpu_devices; .* Received: distribute.cpu_devices=\[1, 2\]$",
    ):
        sweep.plan_sweep(
            {"distribute.cpu_devices": [1, 2]}, None, ["distribute.strategy=multi_worker"]
        )


def test_a_sweep_keeps_one_cpu_device_count():
    # TensorFlow splits the CPU once per process: point 01 failed after point 00 had run.
    with pytest.raises(ConfigError, match=r"Received: distribute.cpu_devices=\[2, 4\]$"):
        sweep.plan_sweep({"distribute.cpu_devices": [2, 4]}, None, ["distribute.strategy=mirrored"])


def test_resume_strategy_reaches_every_point_not_completed(tmp_path):
    # A sweep folder as --sweep leaves it before any point ran: its plan only.
    folder = tmp_path / "sweep"
    points = sweep.plan_sweep({"seed": [1, 2]})
    runs = [(point.config, folder / point.name, False) for point in points]
    plans.write_sweep_plan(folder, runs, swept_keys=["seed"], metric="validation_accuracy")
    planned = plans.plan_resume(folder, None, "mirrored")
    assert [config.distribute.strategy for config, _, _ in planned] == ["mirrored", "mirrored"]
    assert [config.seed for config, _, _ in planned] == [1, 2]


def test_resume_epochs_that_finished_points_cannot_reach_is_refused(tmp_path):
    # --resume --epochs 3 ran the points left to 3 epochs and kept the finished ones at 1:
    # the summary then ranked runs of different lengths together.
    folder = tmp_path / "sweep"
    points = sweep.plan_sweep({"seed": [1, 2]}, None, ["train.epochs=1"])
    runs = [(point.config, folder / point.name, False) for point in points]
    plans.write_sweep_plan(folder, runs, swept_keys=["seed"], metric="validation_accuracy")
    done = folder / points[0].name
    done.mkdir()
    (done / "config.yaml").write_text(points[0].config.to_yaml())
    (done / "status.json").write_text(json.dumps({"state": "completed"}))
    with pytest.raises(ConfigError) as refused:
        plans.plan_resume(folder, 3)
    assert str(refused.value) == (
        f"--epochs 3 cannot reach the points of {folder} that finished already: "
        f"{points[0].name} (train.epochs=1); the summary would rank runs of different "
        "lengths together. Resume without --epochs, or start a new sweep with --epochs"
    )
    for epochs in (None, 1):  # the finished point's own length: the rest run to it
        planned = plans.plan_resume(folder, epochs)
        assert planned[0][0] is None and planned[1][0].train.epochs == 1


@pytest.mark.parametrize(
    "grid,args,message",
    [
        (
            {"train.epochs": [1, 2]},
            (3, None),
            "--epochs 3 would give every point of {folder} train.epochs=3, which the sweep "
            "varies (1, 2): two points would train the same config. Resume without --epochs",
        ),
        (
            {"distribute.strategy": ["one_device", "mirrored"]},
            (None, "mirrored"),
            "--strategy mirrored would give every point of {folder} "
            "distribute.strategy=mirrored, which the sweep varies (one_device, mirrored): two "
            "points would train the same config. Resume without --strategy",
        ),
    ],
    ids=["epochs", "strategy"],
)
def test_resume_option_that_the_sweep_varies_is_refused(tmp_path, grid, args, message):
    # Before any point finished, --resume --epochs 3 of a sweep over train.epochs: [1, 2]
    # ran both points to 3 epochs, in folders named epochs=1 and epochs=2.
    folder = tmp_path / "sweep"
    points = sweep.plan_sweep(grid)
    runs = [(point.config, folder / point.name, False) for point in points]
    plans.write_sweep_plan(folder, runs, swept_keys=list(grid), metric="validation_accuracy")
    with pytest.raises(ConfigError) as refused:
        plans.plan_resume(folder, *args)
    assert str(refused.value) == message.format(folder=folder)


DAMAGED_PLANS = [
    ("", "it is empty"),
    ("keys: [seed]\n", "'points' must be a non-empty list. Received: points=None"),
    ("[1, 2]", "it must be a mapping with 'points'; it holds [1, 2]"),
    ("points: [1]\n", "point 0 must be {name: <folder name>, config: <mapping>}. Received: 1"),
    ("points:\n- {name: ../up, config: {}}\n", "point 0 must be {name: <folder name>"),
    ("points:\n- {name: a, config: {}}\nkeys: seed\n", "'keys' must be a list"),
]


@pytest.mark.parametrize(
    "text,message",
    DAMAGED_PLANS,
    ids=["empty", "no-points", "list", "bad-point", "escaping-name", "keys-not-a-list"],
)
def test_resume_of_a_damaged_sweep_plan_is_one_line_naming_the_file(tmp_path, text, message):
    # The plan --sweep writes (see test_resume_strategy_reaches_every_point_not_completed),
    # damaged: emptied, cut down to its keys, or edited by hand.
    folder = tmp_path / "sweep"
    folder.mkdir()
    write(folder, text)
    result = invoke_train(["--resume", str(folder)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"kerasmlp-train: error: {folder / 'sweep.yaml'} is not a sweep plan as --sweep writes it: "
    )
    assert message in line
    assert sorted(p.name for p in folder.iterdir()) == ["sweep.yaml"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "must map dotted config keys to lists of values"),
        ("[1, 2]", "must map dotted config keys"),
        ("model.activation: relu", "model.activation must be a non-empty list"),
        ("model.activation: []", "model.activation must be a non-empty list"),
        ("'bad key!': [1]", "keys must be dotted config keys"),
        ("a: [1\n", r"sweep.yaml line 2: not valid YAML: while parsing a flow sequence"),
        ("seed: " + str(list(range(300))), "at most 256 runs"),
        (
            "seed: [1]\nseed: [2]\n",
            r"sweep.yaml line 2: .*duplicate key 'seed' \(first on line 1\)",
        ),
        ("seed: " + "x" * 300, r"Received: seed=xxxx*\.\.\.$"),
        # As in a config file; the message asked for 'model: [a, b]'.
        (
            "model:\n  activation: [relu, tanh]\n",
            r"keys are dotted, one per line, not nested: write model.activation: \[a, b\]\. "
            r"Received: model=\{activation: \[relu, tanh\]\}$",
        ),
    ],
    ids=[
        "empty",
        "list",
        "scalar",
        "empty-list",
        "bad-key",
        "bad-yaml",
        "too-big",
        "duplicate",
        "long-value",
        "nested",
    ],
)
def test_bad_sweep_files_are_refused_with_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        sweep.load_grid(write(tmp_path, text))


def test_missing_sweep_file():
    with pytest.raises(ConfigError, match="Sweep file not found"):
        sweep.load_grid("no/such/sweep.yaml")


def test_the_example_sweep_is_a_valid_grid():
    grid = sweep.load_grid(REPO_ROOT / "configs" / "sweep_example.yaml")
    assert len(sweep.plan_sweep(grid)) == 4


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "model.activation: [relu, tanhh]",
            "sweep point 1 (model.activation=tanhh): Unknown activation",
        ),
        ("model.nope: [1]", "Unknown key 'model.nope'"),
        ("model.activation: relu", "must be a non-empty list"),
        (
            "distribute.strategy: [multi_worker, one_device]",
            "its points cannot vary distribute.strategy; run one sweep per setting",
        ),
    ],
)
def test_cli_bad_sweep_exits_2_with_one_line(tmp_path, text, message):
    path = write(tmp_path, text)
    result = invoke_train(["--sweep", str(path), "--logdir", str(tmp_path / "logs")])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "text,args,message",
    [
        (
            "train.epochs: [1, 2]",
            ["--epochs", "3"],
            "--epochs 3 sets train.epochs, which the sweep varies (train.epochs: [1, 2])",
        ),
        (
            "model.activation: [relu, tanh]",
            ["--set", "model.activation=gelu"],
            "--set model.activation=gelu sets model.activation, which the sweep varies "
            "(model.activation: [relu, tanh])",
        ),
        (
            "train.class_weight: [none, balanced]",
            ["--set", "train.class_weight.spiral_a=2"],
            "--set train.class_weight.spiral_a=2 sets train.class_weight.spiral_a, which the "
            "sweep varies (train.class_weight: [none, balanced])",
        ),
        (
            # A whole section as a mapping: load_config merges it, and the point's
            # train.epochs replaced the option's 3 (00-epochs=1 ran 1 epoch), unsaid.
            "train.epochs: [1, 2]",
            ["--set", "train={epochs: 3}"],
            "--set train={epochs: 3} sets train.epochs, which the sweep varies "
            "(train.epochs: [1, 2])",
        ),
    ],
    ids=["epochs", "set", "set-below", "set-section"],
)
def test_cli_option_of_a_swept_key_is_refused(tmp_path, text, args, message):
    # Each point's value replaced the option's: --epochs 3 ran 1 and 2 epochs, unsaid.
    path = write(tmp_path, text)
    result = invoke_train(["--sweep", str(path), "--logdir", str(tmp_path / "logs"), *args])
    assert result.exit_code == 2
    assert result.stderr == (
        f"kerasmlp-train: error: {message}: every point would take its own value instead. "
        "Drop the option, or the key from the sweep\n"
    )
    assert not (tmp_path / "logs").exists()


def test_options_that_set_other_keys_of_a_swept_section_are_kept():
    # The keys a section's mapping sets are checked one by one; `train=` sets none.
    grid = {"train.epochs": [1, 2]}
    options = [
        ("--set train={batch_size: 32}", "train={batch_size: 32}"),
        ("--set train=", "train="),
    ]
    sweep.check_overrides(grid, options)
    with pytest.raises(ConfigError, match=r"sets train\.early_stopping\.patience, which"):
        option = "train={early_stopping: {patience: 3}}"
        sweep.check_overrides({"train.early_stopping": [{}]}, [(f"--set {option}", option)])


def test_options_the_points_keep_are_not_refused():
    # A section's mapping in the grid is merged key by key (load_config): --epochs 1 is kept
    # by every point. It was refused: "sets train.epochs, which the sweep varies (train: ...)".
    grid = {"train": [{"batch_size": 16}, {"batch_size": 32}]}
    sweep.check_overrides(grid, [("--epochs 1", "train.epochs=1")])
    runs = sweep.plan_sweep(grid, None, ["train.epochs=1"])
    assert [(r.config.train.epochs, r.config.train.batch_size) for r in runs] == [(1, 16), (1, 32)]
    # train.class_weight is no section: the point's mapping replaces it whole, the option lost.
    option = "train.class_weight.spiral_c=3"
    with pytest.raises(ConfigError, match="sets train.class_weight.spiral_c, which the sweep"):
        sweep.check_overrides({"train.class_weight": [{"spiral_a": 2}]}, [(option, option)])
    # The other way round, the point's key goes into the option's mapping: both are kept.
    grid, option = {"train.class_weight.spiral_b": [1, 2]}, "train.class_weight={spiral_a: 3}"
    sweep.check_overrides(grid, [(option, option)])
    runs = sweep.plan_sweep(grid, None, [option])
    assert [r.config.train.class_weight for r in runs] == [
        {"spiral_a": 3.0, "spiral_b": 1.0},
        {"spiral_a": 3.0, "spiral_b": 2.0},
    ]


def test_cli_sweep_runs_one_run_per_point_into_one_folder(tmp_path):
    path = write(tmp_path, "model.activation: [relu, tanh]\n")
    args = [
        "--sweep",
        str(path),
        "--logdir",
        str(tmp_path / "logs"),
        "--run-name",
        "grid",
        "--epochs",
        "1",
        "--set",
        "model.hidden_units=[4]",
        "--set",
        "train.histogram_every_epochs=0",
        "--set",
        "train.image_every_epochs=0",
        "--set",
        f"data.data_dir={tmp_path / 'tfds'}",
    ]
    result = invoke_train(args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "logs" / "grid"
    points = ["00-activation=relu", "01-activation=tanh"]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == points
    assert (folder / "sweep.yaml").is_file()  # the plan that --resume finishes
    results = {}
    for name in points:
        results[name] = json.loads((folder / name / "metrics.json").read_text())
        assert results[name]["epochs"] == 1
        # The swept key leads the HParams record, marked as the one that differs.
        experiment = hparams_experiment(folder / name)
        assert experiment.hparam_infos[0].name == "model.activation"
        assert [i.name for i in experiment.hparam_infos if i.differs] == ["model.activation"]
    assert f"tensorboard --logdir {folder}" in result.output

    # The summary: ranked by the default, validation_accuracy, from each metrics.json.
    summary = [line for line in result.output.splitlines() if line.startswith("sweep |")]
    assert (folder / "summary.txt").read_text() == "\n".join(summary) + "\n"
    assert summary[0] == "sweep | 2 points ranked by validation_accuracy (higher is better)"
    best, worst = sorted(points, key=lambda p: -results[p]["validation_accuracy"])
    assert summary[2].endswith(f" | {best}") and summary[3].endswith(f" | {worst}")
    assert f"{results[best]['validation_accuracy']:.4f}" in summary[2]

    # A resumed sweep (here, nothing left to run) ends with the same summary over all points.
    resumed = invoke_train(["--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.count("completed already") == 2
    assert [line for line in resumed.output.splitlines() if line.startswith("sweep |")] == summary
    # --sweep-metric may come with --resume of a sweep, to rank again.
    resumed = invoke_train(["--resume", str(folder), "--sweep-metric", "test_loss"])
    assert resumed.exit_code == 0, resumed.output
    assert "sweep | 2 points ranked by test_loss (lower is better)" in resumed.output
    # A sweep.yaml written before the keys and the metric were kept: the default again.
    plan = yaml.safe_load((folder / "sweep.yaml").read_text())
    assert plan["keys"] == ["model.activation"] and plan["metric"] == "validation_accuracy"
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"points": plan["points"]}))
    resumed = invoke_train(["--resume", str(folder)])
    assert [line for line in resumed.output.splitlines() if line.startswith("sweep |")] == summary


def tiny_sweep(tmp_path, path, name, *more):
    """kerasmlp-train's arguments for a one-epoch sweep of `path` on a 4-unit model, into
    tmp_path/logs/`name`, with no histograms or pictures; `more` after them."""
    return [
        "--sweep", str(path), "--logdir", str(tmp_path / "logs"), "--run-name", name,
        "--epochs", "1",
        "--set", "model.hidden_units=[4]",
        "--set", "train.histogram_every_epochs=0",
        "--set", "train.image_every_epochs=0",
        "--set", f"data.data_dir={tmp_path / 'tfds'}",
        *more,
    ]  # fmt: skip


def test_every_point_lists_the_hparams_metric_columns_of_all_points(tmp_path):
    # TensorBoard takes the columns of one run's experiment record for the whole folder
    # (backend_context._find_experiment_tag: "arbitrarily pick the first one"): point 00,
    # without a validation split, listed test columns only, and the HParams tab showed
    # no validation column for point 01 either.
    path = write(tmp_path, "train.validation_fraction: [0, 0.1]\n")
    args = tiny_sweep(tmp_path, path, "vf")
    result = invoke_train(args)
    assert result.exit_code == 0, result.output
    columns = [
        ("validation", "loss"), ("validation", "accuracy"), ("test", "loss"), ("test", "accuracy")
    ]  # fmt: skip
    for name in ("00-validation_fraction=0", "01-validation_fraction=0.1"):
        experiment = hparams_experiment(tmp_path / "logs" / "vf" / name)
        assert [(m.name.group, m.name.tag) for m in experiment.metric_infos] == columns


@pytest.mark.parametrize(
    "grid,shown",
    [
        ("train.class_weight: [none, {spiral_a: 2.0}]\n", ["none", "{spiral_a: 2.0}"]),
        # A swept key below a column leads that column.
        ("train.class_weight.spiral_b: [0.5, 2]\n", ["{spiral_b: 0.5}", "{spiral_b: 2.0}"]),
    ],
    ids=["mode-or-mapping", "one-class"],
)
def test_every_point_writes_the_same_hparams_names_and_types(tmp_path, grid, shown):
    # A mapping flattened to one column per class: point 00 wrote train.class_weight
    # (a string), point 01 train.class_weight.spiral_a (a number), and TensorBoard,
    # which takes one point's names for the whole folder, dropped the other's column.
    path = write(tmp_path, grid)
    args = tiny_sweep(tmp_path, path, "cw")
    result = invoke_train(args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "logs" / "cw"
    records, values = [], []
    for point in sorted(p for p in folder.iterdir() if p.is_dir()):
        experiment = hparams_experiment(point)
        records.append([(i.name, i.type, i.differs) for i in experiment.hparam_infos])
        values.append(hparams_session_start(point).hparams["train.class_weight"])
    assert len(records) == 2 and records[0] == records[1]
    assert records[0][0] == ("train.class_weight", api_pb2.DATA_TYPE_STRING, True)
    assert [v.string_value for v in values] == shown


def test_a_diverging_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    # sgd at 1e30 turns the weights to inf within a step or two (as the README's
    # divergence example); 0.01 trains.
    path = write(tmp_path, "optimizer.learning_rate.initial_learning_rate: [1.0e+30, 0.01]\n")
    args = tiny_sweep(
        tmp_path, path, "swd", "--set", "model.hidden_units=[16,16]", "--set", "optimizer.name=sgd"
    )
    result = invoke_train(args)
    assert result.exit_code == 3, result.output
    folder = tmp_path / "logs" / "swd"
    diverged, trained = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert json.loads((folder / diverged / "status.json").read_text())["state"] == "diverged"
    assert json.loads((folder / trained / "status.json").read_text())["state"] == "completed"
    errors = result.stderr.splitlines()
    assert errors[0].startswith(
        f"kerasmlp-train: error: sweep run {diverged} "
        "(optimizer.learning_rate.initial_learning_rate=1.0e+30): diverged at step "
    )
    assert errors[1:] == [
        f"kerasmlp-train: error: 1 of 2 sweep runs diverged (ranked last): {diverged}"
    ]
    summary = [line for line in result.output.splitlines() if line.startswith("sweep |")]
    assert summary[2].startswith("sweep |    1 |") and summary[2].endswith(trained)
    assert summary[3].startswith("sweep |    - |") and summary[3].endswith(diverged)
    assert (folder / "summary.txt").read_text() == "\n".join(summary) + "\n"

    # Resumed: the diverged point is not run again (it would diverge again), and the
    # sweep still says that one of its points diverged.
    resumed = invoke_train(["--resume", str(folder)])
    assert resumed.exit_code == 3, resumed.output
    assert "diverged already" in resumed.output and "completed already" in resumed.output
    assert "training" not in resumed.output
    assert resumed.stderr.splitlines() == errors[1:]


def test_a_point_that_fails_names_itself_and_says_what_is_kept(tmp_path):
    # Valid config, but the dataset (spirals) has no class '0': the point fails once its
    # data is read. The line gave only that reason, not which point of the sweep.
    path = write(tmp_path, "train.class_weight: [none, {'0': 2.0}]\n")
    args = tiny_sweep(tmp_path, path, "swf")
    folder = tmp_path / "logs" / "swf"
    line = (
        "kerasmlp-train: error: sweep run 01-class_weight=0-2.0 (train.class_weight={'0': 2.0}) "
        "failed: train.class_weight names class '0', which the dataset does not have. "
        "Classes: spiral_a, spiral_b. The sweep stopped there; its finished points (1 of 2) "
        f"are kept in {folder}: kerasmlp-train --resume {folder} runs the 1 left, this one "
        "first, with the same config\n"
    )
    result = invoke_train(args)
    assert result.exit_code == 2, result.output
    assert result.stderr == line
    assert sorted(p.name for p in folder.iterdir()) == ["00-class_weight=none", "sweep.yaml"]
    # --resume keeps the finished point and tries the failed one again, with its config.
    resumed = invoke_train(["--resume", str(folder)])
    assert resumed.exit_code == 2 and "completed already" in resumed.output
    assert resumed.stderr == line


def test_a_signal_after_a_points_training_stops_the_sweep_before_the_next(tmp_path, monkeypatch):
    # Ctrl-C during point 00's test evaluation or save: that point completes, as a single run
    # does. The next point began anyway and stopped at its step 0, in a folder of its own.
    from kerasmlp import train

    real = train.train_and_evaluate

    def then_ctrl_c(*args, stop_request, **kwargs):
        results = real(*args, stop_request=stop_request, **kwargs)
        stop_request.request("SIGINT")  # as the handler does, once training is over
        return results

    monkeypatch.setattr(train, "train_and_evaluate", then_ctrl_c)
    path = write(tmp_path, "model.activation: [relu, tanh]\n")
    args = tiny_sweep(tmp_path, path, "sig")
    folder = tmp_path / "logs" / "sig"
    result = invoke_train(args)
    assert result.exit_code == 130, result.output
    assert result.output.splitlines()[-2:] == [
        "sweep run 01-activation=tanh",
        f"interrupted before it began; continue with: kerasmlp-train --resume {folder}",
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["00-activation=relu", "sweep.yaml"]
    monkeypatch.setattr(train, "train_and_evaluate", real)
    resumed = invoke_train(["--resume", str(folder)])
    assert resumed.exit_code == 0, resumed.output
    assert "completed already" in resumed.output
    assert (folder / "01-activation=tanh" / "model.keras").is_file()


def test_two_sweeps_under_one_logdir_are_separate_hparams_rows(tmp_path):
    # Each point's session group was its folder's name: TensorBoard's HParams tab over
    # both sweeps (`tensorboard --logdir logs`) showed one row for the two
    # 00-activation=tanh, the seed of one and the metrics of both averaged.
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context, list_session_groups

    path = write(tmp_path, "model.activation: [tanh]\n")
    logs = tmp_path / "logs"
    for seed in (1, 2):
        args = tiny_sweep(tmp_path, path, f"s{seed}", "--seed", str(seed))
        assert invoke_train(args).exit_code == 0
    # What TensorBoard's HParams plugin serves for `tensorboard --logdir logs`.
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logs))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logs))
    tb_context = base_plugin.TBContext(
        logdir=str(logs), multiplexer=multiplexer, data_provider=provider
    )
    request = api_pb2.ListSessionGroupsRequest(
        allowed_statuses=[api_pb2.STATUS_SUCCESS],
        col_params=[api_pb2.ColParams(hparam="seed")],
        start_index=0,
        slice_size=10,
    )
    response = list_session_groups.Handler(
        context.RequestContext(), backend_context.Context(tb_context), "", request
    ).run()
    rows = {
        tuple(s.name for s in group.sessions): group.hparams["seed"].number_value
        for group in response.session_groups
    }
    assert rows == {("s1/00-activation=tanh",): 1, ("s2/00-activation=tanh",): 2}


def hparams_experiment(run_dir):
    accumulator = events.load(run_dir)
    content = accumulator.SummaryMetadata("_hparams_/experiment").plugin_data.content
    return hparams_metadata.parse_experiment_plugin_data(content)


def hparams_session_start(run_dir):
    accumulator = events.load(run_dir)
    content = accumulator.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    return hparams_metadata.parse_session_start_info_plugin_data(content)


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--sweep-metric", "validation_acuracy"],
            "Unknown metric 'validation_acuracy' (--sweep-metric). "
            "Did you mean 'validation_accuracy'?",
        ),
        (
            ["--sweep-metric", "validation_loss", "--set", "train.validation_fraction=0"],
            "Unknown metric 'validation_loss' (--sweep-metric). Did you mean 'train_loss'?",
        ),
    ],
    ids=["typo", "no-validation-split"],
)
def test_cli_bad_sweep_metric_exits_2_with_one_line(tmp_path, args, message):
    path = write(tmp_path, "model.activation: [relu, tanh]\n")
    result = invoke_train(["--sweep", str(path), "--logdir", str(tmp_path / "logs"), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()


def test_cli_sweep_metric_without_a_sweep_is_refused(tmp_path):
    result = invoke_train(["--sweep-metric", "test_loss", "--logdir", str(tmp_path / "logs")])
    assert result.exit_code == 2
    assert "--sweep-metric ranks the points of a sweep" in result.stderr
    assert not (tmp_path / "logs").exists()


def test_cli_sweep_metric_with_the_resume_of_one_run_is_refused_saying_so(tmp_path):
    # --sweep cannot come with --resume, so "Give --sweep" was no way out there.
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(Config().to_yaml())
    (run / "status.json").write_text('{"state": "interrupted"}')  # killed before a checkpoint
    result = invoke_train(["--resume", str(run), "--sweep-metric", "test_loss"])
    assert result.exit_code == 2
    assert result.stderr == (
        "kerasmlp-train: error: --sweep-metric ranks the points of a sweep; "
        f"--resume {run} is one run, not a sweep's folder: drop it. "
        "Received: --sweep-metric=test_loss\n"
    )
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "status.json"]


def test_a_sweep_over_the_optimizers_own_keys(tmp_path):
    # optimizer.clipnorm swept, with --set optimizer.name=sgd and optimizer.momentum=0.9:
    # each point's folder names its value, its config.yaml holds them, and both points
    # write the same HParams names and types (clipnorm is text: 'null' or the number).
    path = write(tmp_path, "optimizer.clipnorm: [null, 1.0]\n")
    more = ["--set", "optimizer.name=sgd", "--set", "optimizer.momentum=0.9"]
    result = invoke_train(tiny_sweep(tmp_path, path, "opt", *more))
    assert result.exit_code == 0, result.output
    points = sorted(p for p in (tmp_path / "logs" / "opt").iterdir() if p.is_dir())
    assert [p.name for p in points] == ["00-clipnorm=null", "01-clipnorm=1.0"]
    records, values = [], []
    for point in points:
        written = load_config(point / "config.yaml").optimizer
        records.append([(i.name, i.type) for i in hparams_experiment(point).hparam_infos])
        hparams = hparams_session_start(point).hparams
        values.append(
            (
                written.momentum,
                written.clipnorm,
                hparams["optimizer.momentum"].number_value,
                hparams["optimizer.clipnorm"].string_value,
            )
        )
    assert records[0] == records[1]
    types = dict(records[0])
    assert types["optimizer.momentum"] == api_pb2.DATA_TYPE_FLOAT64
    assert types["optimizer.clipnorm"] == api_pb2.DATA_TYPE_STRING
    assert values == [(0.9, None, 0.9, "null"), (0.9, 1.0, 0.9, "1.0")]


def test_a_sweep_point_whose_optimizer_does_not_take_a_key_is_refused_before_any_run():
    # The refusal says how to write such a sweep: the key in a grid over the section,
    # given to the points that take it; the grid it shows plans (below).
    with pytest.raises(ConfigError) as refused:
        sweep.plan_sweep({"optimizer.name": ["sgd", "adam"]}, None, ["optimizer.momentum=0.9"])
    assert str(refused.value) == (
        "sweep point 1 (optimizer.name=adam): optimizer.momentum applies to rmsprop and sgd; "
        "optimizer.name is adam: remove it from the config, or set it back to its default "
        "(optimizer.momentum=0.0). Received: optimizer.momentum=0.9. To give "
        "optimizer.momentum only to the optimizers that take it, set it in the grid, not in "
        "the config or an option: optimizer: [{name: sgd, momentum: 0.9}, {name: adam}]"
    )
    advised = {"optimizer": [{"name": "sgd", "momentum": 0.9}, {"name": "adam"}]}
    planned = sweep.plan_sweep(advised, None, [])
    assert [run.config.optimizer.momentum for run in planned] == [0.9, 0.0]


def test_cli_option_that_every_points_optimizer_takes_is_kept(tmp_path):
    # --set optimizer.momentum=0.9 with `optimizer.name: [sgd, rmsprop]`: both points take
    # momentum, but the CLI checked the base config (the default adam) first and refused
    # the sweep ("optimizer.name is adam"). The misspelt --sweep-metric, checked once the
    # points are planned, is refused instead: so nothing trains, and the points passed.
    path = write(tmp_path, "optimizer.name: [sgd, rmsprop]\n")
    args = ["--sweep", path, "--logdir", tmp_path / "logs", "--set", "optimizer.momentum=0.9"]
    result = invoke_train([*args, "--sweep-metric", "validation_acuracy"])
    assert result.exit_code == 2
    assert result.stderr.startswith("kerasmlp-train: error: Unknown metric 'validation_acuracy'")
    assert not (tmp_path / "logs").exists()

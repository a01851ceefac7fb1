"""Tests for kerasmlp.sweep: reading the grid, naming points, checking configs, the --sweep CLI."""

import json

import pytest
from click.testing import CliRunner

from kerasmlp import sweep
from kerasmlp.cli import main
from kerasmlp.config import ConfigError
from tests.conftest import REPO_ROOT


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


def test_run_names_are_short_plain_and_unique():
    name = sweep.run_name(
        3, {"model.hidden_units": [64, 32], "optimizer.learning_rate.initial_learning_rate": 0.003}
    )
    assert name == "03-hidden_units=64x32,initial_learning_rate=0.003"
    # Two keys ending alike keep their full paths; odd characters become '_'.
    name = sweep.run_name(0, {"a.name": "x/y", "b.name": "../z"})
    assert name == "00-a.name=x_y,b.name=__z"
    assert "/" not in name and ".." not in name


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
    ],
)
def test_cli_bad_sweep_exits_2_with_one_line(tmp_path, text, message):
    path = write(tmp_path, text)
    result = CliRunner().invoke(main, ["--sweep", str(path), "--logdir", str(tmp_path / "logs")])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()


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
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "logs" / "grid"
    assert sorted(p.name for p in folder.iterdir()) == [
        "00-activation=relu",
        "01-activation=tanh",
        "sweep.yaml",  # the plan that --resume finishes
    ]
    for run in folder.glob("0*"):
        assert json.loads((run / "metrics.json").read_text())["epochs"] == 1
        assert list(run.glob("events.out.tfevents.*"))  # its HParams session
    assert f"tensorboard --logdir {folder}" in result.output

"""The README tells the truth: its code runs, and it documents every config key."""

import dataclasses
import math
import re
import typing

import pytest
import yaml

from kerasmlp.config import Config
from tests.conftest import REPO_ROOT, invoke_train

README = (REPO_ROOT / "README.md").read_text()


def test_every_config_key_is_in_the_reference_table():
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", README, flags=re.M))
    assert documented == set(Config().flatten())


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


TABLE_ROWS = dict(re.findall(r"^\| `([a-z_.]+)` \| `([^`]*)` \|", README, flags=re.M))


@pytest.mark.parametrize("key,default", list(_leaves(Config().to_dict())))
def test_the_reference_table_states_each_default(key, default):
    # The table's default column, read as YAML, against the dataclasses' own default.
    assert key in TABLE_ROWS, f"{key} has no row with a `default` in the README's table"
    assert yaml.safe_load(TABLE_ROWS[key]) == default


def _int_bounds(cls=Config, prefix=""):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            yield from _int_bounds(hints[field.name], f"{prefix}{field.name}.")
        elif hints[field.name] in (int, tuple[int, ...]):
            _, _, lt, le = field.metadata["range"]
            yield prefix + field.name, ("< ", lt) if lt is not None else ("<= ", le)


def _written(number: int) -> str:
    """How the README writes a bound: 2^32, 10^9, or the digits."""
    for base in (10, 2):
        power = round(math.log(number, base))
        if base**power == number and number >= 10**7:
            return f"{base}^{power}"
    return str(number)


@pytest.mark.parametrize("key,bound", list(_int_bounds()))
def test_the_reference_table_states_each_integer_bound(key, bound):
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| [^|]* \| ([^|]*) \|", README, flags=re.M))
    sign, number = bound
    assert sign + _written(number) in rows[key]


def test_the_losses_and_metrics_examples_run(tmp_path, monkeypatch):
    section = README.split("## Using kerasmlp losses and metrics in your own Keras model")[1]
    section = section.split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    code = "\n".join(blocks).replace("/tmp/kerasmlp_example.keras", "example.keras")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert 0.0 <= float(namespace["accuracy"].result()) <= 1.0
    assert type(namespace["reloaded"].loss).__module__ == "kerasmlp.losses"


def test_the_readme_commands_are_the_ones_ci_runs():
    assert "python -m pip install -e . && kerasmlp-train" in README
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "python -m pip install -e '\\.\\[test\\]' && python -m pytest" in ci
    assert re.search(r"^python -m pip install -e '\.\[test\]' && python -m pytest", README, re.M)


def _section(title):
    return README.split(f"## {title}\n")[1].split("\n## ")[0]


def test_the_own_data_example_runs(tmp_path, monkeypatch):
    # The script writes fruit.csv, the YAML block is fruit.yaml, and every command of the
    # plain block runs through its click command, as the console scripts would.
    import shlex

    from click.testing import CliRunner

    from kerasmlp import cli, predict

    section = _section("Train on your own data")
    (script,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (config,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    commands = re.findall(r"```\n(kerasmlp-train .*?)```", section, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(script, "README.md", "exec"), {})  # noqa: S102 - our own README
    (tmp_path / "fruit.yaml").write_text(config)
    scripts = {"kerasmlp-train": cli.main, "kerasmlp-predict": predict.main}
    outputs = []
    for line in commands.strip().splitlines():
        name, *args = shlex.split(line)
        result = CliRunner().invoke(scripts[name], args)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    stated = re.search(r"`(data \| csv \|.*?)`", section).group(1)
    assert " ".join(stated.split()) in " ".join(outputs[0].split())
    predictions = (tmp_path / "predictions.csv").read_text().splitlines()
    assert predictions[0] == "predicted,probability_apple,probability_banana,probability_cherry"
    assert len(predictions) == 301
    accuracy = float(re.search(r"accuracy (\S+)", outputs[1]).group(1))
    assert accuracy > 0.9  # weight and color separate the three fruits
    # The section's error line is what kerasmlp-train prints for this fruit.csv.
    (shown,) = re.findall(r"```\n(kerasmlp-train: error: .*?)\n```", section)
    args = ["-c", "fruit.yaml", "--set", "data.label=Fruit", "--run-name", "typo"]
    result = invoke_train(args)
    assert (result.exit_code, result.output) == (2, shown + "\n")
    # data.path is relative to the current directory; config.yaml keeps it made absolute,
    # so --split test finds the same fruit.csv from elsewhere, and a moved one is named.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(predict.main, [str(tmp_path / "logs" / "fruit"), "--split", "test"])
    assert result.exit_code == 0 and "metrics    | examples 60 |" in result.stderr, result.output
    (tmp_path / "fruit.csv").rename(tmp_path / "moved.csv")
    result = CliRunner().invoke(predict.main, [str(tmp_path / "logs" / "fruit"), "--split", "test"])
    assert result.exit_code == 2
    assert result.output == (
        f"kerasmlp-predict: error: File not found: {tmp_path / 'fruit.csv'} (data.path)\n"
    )
    (tmp_path / "moved.csv").rename(tmp_path / "fruit.csv")
    monkeypatch.chdir(tmp_path)
    # The confusion matrix (drawn with the class names) is among the run's images.
    from tests import events

    images = events.tags_by_plugin(tmp_path / "logs" / "fruit" / "validation").get("images", set())
    assert any("confusion_matrix" in tag for tag in images), images

    # "Use the trained model": its Python block runs on that same run.
    (usage,) = re.findall(r"```python\n(.*?)```", _section("Use the trained model"), flags=re.S)
    namespace: dict = {}
    exec(compile(usage, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["probabilities"].shape == (2, 3)
    assert list(namespace["run"].predict(namespace["columns"])) == ["apple", "cherry"]

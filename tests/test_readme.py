"""The README tells the truth: its code runs, and it documents every config key."""

import dataclasses
import json
import math
import re
import typing

import pytest
import yaml

from kerasmlp.config import Config
from tests.conftest import REPO_ROOT, invoke_train

README = (REPO_ROOT / "README.md").read_text()


def test_every_config_key_is_in_the_reference_table():
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", README, flags=re.M))
    assert documented == set(Config().flatten())


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


TABLE_ROWS = dict(re.findall(r"^\| `([a-z0-9_.]+)` \| `([^`]*)` \|", README, flags=re.M))


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
    rows = dict(re.findall(r"^\| `([a-z0-9_.]+)` \| [^|]* \| ([^|]*) \|", README, flags=re.M))
    sign, number = bound
    assert sign + _written(number) in rows[key]


def _float_bounds(cls=Config, prefix=""):
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            yield from _float_bounds(hints[field.name], f"{prefix}{field.name}.")
        elif hints[field.name] is float and "range" in field.metadata:
            yield prefix + field.name, field.metadata["range"]


def _interval(gt, ge, lt, le) -> str:
    """How the README writes a number key's range: `in [0, 1)`, `> 0`, `>= 0 and <= 10^9`."""
    low, high = (gt, ge)[gt is None], (lt, le)[lt is None]
    if high is None:
        return f"{'>' if gt is not None else '>='} {low:g}"
    if high >= 10**7:  # a cap against typos, written as the integers' caps are
        return f"{'>' if gt is not None else '>='} {low:g} and <= {_written(int(high))}"
    return f"in {'(' if gt is not None else '['}{low:g}, {high:g}{')' if lt is not None else ']'}"


@pytest.mark.parametrize("key,bounds", list(_float_bounds()), ids=lambda v: str(v))
def test_the_reference_table_states_each_number_range(key, bounds):
    # train.checkpoint_every_seconds and min_delta were documented as `>= 0`, and 2e9 refused.
    rows = dict(re.findall(r"^\| `([a-z0-9_.]+)` \| [^|]* \| ([^|]*) \|", README, flags=re.M))
    assert rows[key].startswith(_interval(*bounds))


def test_the_tour_turns_off_with_0_only_the_frequencies_that_accept_0():
    # The tour's sentence on how often each kind is written: the keys just before
    # "0 = off" (after the last ";") load with 0; the keys it names before them refuse 0.
    from kerasmlp.config import ConfigError, load_config

    sentence = re.search(
        r"How often each kind is written is set in `train:` \((.*?)\)", README, re.S
    )
    *others, off = sentence.group(1).split("0 = off")[0].split(";")
    off = re.findall(r"`([a-z_]+)`", off)
    assert off
    for key in off:
        assert getattr(load_config(None, [f"train.{key}=0"]).train, key) == 0
    for key in re.findall(r"`([a-z_]+)`", ";".join(others)):
        with pytest.raises(ConfigError, match=f"train.{key} must be >= 1"):
            load_config(None, [f"train.{key}=0"])


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
    # metrics.json holds what "What a run writes" lists, and only that.
    listed = README.split("- `metrics.json`: the final values as returned by")[1]
    listed = listed.split("\n- ")[0].split(":", 1)[1]  # after `train_and_evaluate`:
    names = {name.removesuffix("_*") for name in re.findall(r"`([a-z_]+(?:_\*)?)`", listed)}
    written = json.loads((tmp_path / "logs" / "fruit" / "metrics.json").read_text())
    assert {re.sub(r"^(train|validation|test)_.*", r"\1", key) for key in written} == names
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
    # "What a run writes": the model with probabilities, as the README names the call.
    (call,) = re.findall(r"`(kerasmlp\.load_run\(run_dir\)\.probability_model\(\))`", README)
    import kerasmlp

    with_softmax = eval(call, {"kerasmlp": kerasmlp, "run_dir": tmp_path / "logs" / "fruit"})  # noqa: S307
    assert with_softmax.output.shape == (None, 3)
    assert list(namespace["run"].predict(namespace["columns"])) == ["apple", "cherry"]


def _set_commands():
    """Each line of the README's plain code blocks (commands and their output), and each
    inline code span, that gives `--set`, one line each."""
    lines, prose, fence = [], [], None
    for line in README.replace("\\\n", " ").splitlines(keepends=True):
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
        elif fence == "":
            lines.append(line)
        elif fence is None:
            prose.append(line)
    lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", "".join(prose))]
    return [line for line in lines if "--set" in line]


def test_every_set_shown_is_one_shell_word_of_yaml():
    # As a shell splits them: `--set optimizer={name: sgd}` unquoted gave click the two
    # words `optimizer={name:` and `sgd}` ("Got unexpected extra argument (sgd})").
    import shlex

    from kerasmlp.config import parse_yaml

    commands = _set_commands()
    assert len(commands) > 20
    for command in commands:
        # A `[`, `*`, `?` or `{` left unquoted is a file-name pattern to the shell: zsh
        # (macOS's shell) refuses `--set model.hidden_units=[512,256]` ("no matches found"),
        # bash passes the name of a file it matches, such as `model.hidden_units=5`.
        raw = shlex.shlex(command, posix=False)  # words with their quotes kept
        raw.whitespace_split, raw.commenters = True, "#"
        raw = list(raw)
        for option, word in zip(raw, raw[1:], strict=False):
            unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", word)
            if option == "--set":
                assert not re.search(r"[][*?{}]", unquoted), f"--set {word} in {command!r}"
        words = shlex.split(command, comments=True)
        for option, value in zip(words, words[1:], strict=False):
            if option == "--set":
                key, sep, text = value.partition("=")
                assert sep and key, f"--set {value} in {command!r}"
                parse_yaml(text, source=f"--set {key} in {command!r}")


def _values(line: str) -> dict[str, float]:
    return {name: float(value) for name, value in re.findall(r"(\w+) (\d+\.\d+)", line)}


def test_the_quick_starts_epoch_lines_are_the_default_runs(tmp_path):
    # The transcript's first two epochs and the terminal's epoch 3 line, against the first
    # 3 epochs of the default run (seed 0; the schedule does not depend on train.epochs, and
    # histograms and pictures change no weight). The terminal line was left at an older
    # version's values (loss 0.2264, validation_accuracy 0.9725) when the transcript was
    # updated. Within 0.006: another CPU may round an example or two differently.
    result = invoke_train(
        ["--epochs", 3, "--logdir", tmp_path / "logs", "--set", f"data.data_dir={tmp_path}"]
        + ["--set", "train.histogram_every_epochs=0", "--set", "train.image_every_epochs=0"]
    )
    assert result.exit_code == 0, result.output
    printed = {int(line.split()[1]): line for line in re.findall(r"^epoch .*", result.output, re.M)}
    quick_start = _section("Quick start")
    documented = {
        1: re.search(r"^epoch 1 .*", quick_start, re.M).group(),
        2: re.search(r"^epoch 2 .*", quick_start, re.M).group(),
        # On a terminal the train_ prefix is left out, as Keras's bar leaves it out.
        3: re.search(r"`(epoch 3/40 \| .*?)`", quick_start).group(1).replace("| ", "| train_", 2),
    }
    for epoch, line in documented.items():
        expected, got = _values(line), _values(printed[epoch])
        assert set(expected) == set(got), (line, printed[epoch])
        for name, value in expected.items():
            assert abs(got[name] - value) <= 0.006, (epoch, name, got[name], value)


def test_the_options_table_is_kerasmlp_train_help():
    # Each option the table names exists, with the table's metavar (`--logdir DIR`, not
    # --help's former `--logdir TEXT`), and every option of --help has a row.
    from click.testing import CliRunner

    from kerasmlp import cli

    shown = CliRunner().invoke(cli.main, ["--help"], terminal_width=200).output
    helped = {}
    for names, metavar in re.findall(r"^  ((?:-\w, )?--[\w-]+)(?: (\S+))?", shown, flags=re.M):
        for name in names.split(", "):
            helped[name] = metavar
    table = _section("Quick start").split("### Command-line options")[1].split("\n\n")[1]
    tabled = {}
    for cell in re.findall(r"^\| (.*?) \|", table, flags=re.M)[1:]:  # below the header
        for span in re.findall(r"`([^`]+)`", cell):
            name, _, metavar = span.partition(" ")
            tabled[name] = metavar
    for name, metavar in tabled.items():
        assert name in helped, f"{name} is not an option of kerasmlp-train"
        assert metavar in ("", helped[name]), f"{name} {metavar}: --help says {helped[name]}"
    assert set(helped) - {"-h", "--help"} <= set(tabled)


def test_the_options_table_names_what_run_name_refuses():
    # The table left out the backslash, which --run-name refuses too: its list is the message's.
    from kerasmlp import cli
    from kerasmlp.config import ConfigError

    stated = re.search(r"^\| `--run-name NAME` \|.*?; (no .*? at either end);", README, re.M)
    with pytest.raises(ConfigError) as refused:
        cli._run_name("a\\b", None)
    assert "(" + stated.group(1).replace("`", "'") + ")" in str(refused.value)


def test_the_stated_adamw_weight_decay_is_the_one_adamw_trains_with():
    # optimizer.weight_decay left null: the README states the value Keras's AdamW
    # defaults to, which the optimizer trains with.
    from kerasmlp.components import make_optimizer
    from kerasmlp.config import OptimizerConfig, load_config

    (stated,) = re.findall(r"`adamw` keeps Keras's decoupled `weight_decay=([0-9.]+)`", README)
    assert make_optimizer(OptimizerConfig(name="adamw")).weight_decay == float(stated)
    config = load_config(None, ["optimizer.name=adamw"])
    assert make_optimizer(config.optimizer).weight_decay == float(stated)


def test_a_plain_keras_loss_fails_check_loss_on_dtype_as_stated():
    # The README's note on check_loss: Keras's Loss.get_config leaves out dtype.
    import keras
    import numpy as np

    from kerasmlp.testing import CheckError, check_loss

    assert 'pass `config_exclude=["dtype"]`' in README
    data = {"y_true": np.array([[0.0, 1.0]]), "y_pred": np.array([[0.2, 0.7]])}
    with pytest.raises(CheckError, match=r"lacks constructor argument\(s\) \['dtype'\]"):
        check_loss(keras.losses.MeanSquaredError(), checks=["config"], **data)
    check_loss(keras.losses.MeanSquaredError(), checks=["config"], config_exclude=["dtype"], **data)
    assert "dtype" not in keras.losses.MeanSquaredError(dtype="float64").get_config()


def test_the_layout_names_every_module_and_its_tests():
    # It left out 15 of kerasmlp's 31 modules, and said each had a test module: catalog,
    # errors and inference have none of their own.
    layout = README.split("\nLayout: ")[1].split("\n\n")[0]
    package = REPO_ROOT / "kerasmlp"
    modules = {p.name for p in package.glob("*.py")} - {"__init__.py", "__main__.py"}
    named = set(re.findall(r"`(?:kerasmlp/)?([a-z_]+\.py)`", layout))
    assert modules <= named, sorted(modules - named)
    untested = {m for m in modules if not (REPO_ROOT / "tests" / f"test_{m}").exists()}
    stated = set(re.findall(r"`((?!test_)[a-z_]+\.py)`", layout.split("but for ")[1]))
    assert untested == stated


def test_the_stated_f1_precision_recall_signatures_are_kerasmlps_and_keras():
    # The README's note on F1Score, Precision and Recall: their arguments and defaults, and Keras's.
    import inspect

    import keras

    from kerasmlp import metrics
    from kerasmlp.metrics import F1Score

    # Other metrics quoted with arguments elsewhere (`keras.metrics.CosineSimilarity(axis=0)`
    # in the saving notes) are not this note's.
    found = re.findall(
        r"`((?:kerasmlp|keras)\.metrics\.(?:F1Score|Precision|Recall))\(([^)]*)\)`", README
    )
    stated = {name: arguments for name, arguments in found}
    classes = {
        "kerasmlp.metrics.F1Score": F1Score,
        "keras.metrics.F1Score": keras.metrics.F1Score,
        "keras.metrics.Precision": keras.metrics.Precision,
    }
    assert set(stated) == set(classes)

    # "the same arguments for the other two" (but the default name)
    def arguments(cls):
        return [(p.name, p.default) for p in inspect.signature(cls).parameters.values()][:-2]

    for name in ("Precision", "Recall"):
        assert arguments(getattr(metrics, name)) == arguments(F1Score)
    assert arguments(keras.metrics.Recall) == arguments(keras.metrics.Precision)
    for module, cls in classes.items():
        parameters = inspect.signature(cls.__init__).parameters
        for argument in " ".join(stated[module].split()).split(", "):
            name, _, default = argument.partition("=")
            assert name in parameters, (module, name)
            if default:
                assert repr(parameters[name].default) == default.replace('"', "'"), name
            else:
                assert parameters[name].default is inspect.Parameter.empty, (module, name)


def test_the_stated_tensorboard_callback_error_on_an_array_metric(tmp_path):
    # The README's note on metrics whose result is an array: Keras's TensorBoard callback
    # refuses them at the first epoch's end, with the error quoted there.
    import keras
    import numpy as np

    from kerasmlp.metrics import ConfusionMatrix

    stated = re.search(r"`ValueError: (Expected scalar shape, saw shape: \(3, 3\))`", README)
    assert stated
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    model.compile("sgd", loss="sparse_categorical_crossentropy", metrics=[ConfusionMatrix(3)])
    x, y = np.zeros((4, 2), "float32"), np.array([0, 1, 2, 0])
    callback = keras.callbacks.TensorBoard(str(tmp_path))
    with pytest.raises(ValueError, match=re.escape(stated.group(1))):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])

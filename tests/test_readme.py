"""The README tells the truth: its code runs, and it documents every config key."""

import re

from kerasmlp.config import Config
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_every_config_key_is_in_the_reference_table():
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", README, flags=re.M))
    assert documented == set(Config().flatten())


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

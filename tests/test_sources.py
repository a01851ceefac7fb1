"""Tests for kerasmlp.sources: one record per source kind, read by the config and by load_datasets.

The import rules are checked on the source text (ast): the registry and the
shared module import no TensorFlow, and no source imports `kerasmlp.data`, the
top that chooses among them (so the two never import each other).
"""

import ast

import pytest

from kerasmlp import config, sources
from kerasmlp.sources.common import DataSource, TfdsSource
from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "kerasmlp"


def _imports(path):
    """Modules a file imports, outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("record", sources.RECORDS, ids=lambda r: r.kind)
def test_each_record_resolves_to_its_source_class(record):
    cls = sources.source_class(record.kind)
    assert issubclass(cls, DataSource) and cls.kind == record.kind
    # The builder-based kinds are asked `accepts`; the file kinds are chosen by name.
    assert issubclass(cls, TfdsSource) == (record.kind in sources.BUILDER_KINDS)
    assert set(record.required) <= set(record.keys) <= set(sources.OWN_DATA_KEYS)


def test_the_generated_names_are_the_playgrounds():
    from kerasmlp import data, playground

    assert sources.GENERATED_TASKS == {c.name: c.task for c in playground.CONFIGS}
    assert data.PLAYGROUND_NAMES == tuple(c.name for c in playground.CONFIGS)
    assert sources.GENERATED_BUILDER == playground.KerasmlpPlayground.name


def test_the_config_reads_its_names_from_the_records():
    assert config.TABLE_SOURCES == sources.FILE_NAMES == ("csv", "npz")
    assert config.PLAYGROUND_TASKS == sources.GENERATED_TASKS
    assert config.KNOWN_IMAGE_DATASETS == sources.BY_KIND["tfds_image"].shapes
    assert config.dataset_shape("sine:1.0.0") == (2, None)
    assert config.dataset_shape("cifar100") == (3072, 100)
    assert sources.record_for("spirals:1.0.0").kind == "generated"
    assert sources.record_for("mnist") is None  # a TFDS name: decided from its features


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.path=x.csv"], "data.path applies to your own data (data.name csv or npz); "),
        (["data.label=y"], "data.label applies to your own data (data.name csv); "),
        (["data.name=npz", "data.path=d.npz", "data.label=y"], "data.label applies to csv; an "),
        (["data.name=csv", "data.path=d.csv"], "data.name csv needs data.label, the name of"),
        (["data.name=npz"], "data.name npz needs data.path, the training file"),
        (["data.task=regression"], "data.task applies to your own data (data.name csv or npz)"),
        (
            ["data.name=npz", "data.path=d.npz", "data.categorical=[zone]"],
            "data.categorical applies to csv; an .npz holds arrays x, y",
        ),
    ],
    ids=["path", "label", "npz-label", "csv-needs-label", "npz-needs-path", "task", "categorical"],
)
def test_own_data_keys_are_checked_against_the_records(overrides, message):
    with pytest.raises(config.ConfigError) as error:
        config.load_config(None, overrides)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("module", ["sources/__init__.py", "sources/common.py", "config.py"])
def test_the_registry_and_the_shared_module_import_no_tensorflow(module):
    heavy = {"tensorflow", "keras", "tensorflow_datasets", "numpy"}
    assert not {name.split(".")[0] for name in _imports(PACKAGE / module)} & heavy


@pytest.mark.parametrize(
    "module", ["sources/tables.py", "sources/tfds_examples.py", "tabular.py", "tables.py"]
)
def test_no_source_imports_the_top(module):
    assert not any(name.startswith("kerasmlp.data") for name in _imports(PACKAGE / module))

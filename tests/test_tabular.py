"""Tests for kerasmlp.tabular and kerasmlp.layers: splits, Keras preprocessing, the pipelines.

Expected statistics come from numpy on the training rows (written in the test),
checked against `keras.layers.Normalization.adapt` where no value is missing.
"""

import keras
import numpy as np
import pytest

from kerasmlp import tables, tabular
from kerasmlp.data import load_datasets
from kerasmlp.errors import DataError
from kerasmlp.layers import FillMissing


def _csv(tmp_path, rows=40, name="data.csv"):
    """x (numeric, every 7th missing), color (strings, every 5th missing), label a/b/c."""
    rng = np.random.default_rng(0)
    lines = ["x,color,label"]
    for i in range(rows):
        x = "" if i % 7 == 3 else f"{rng.normal(5, 2):.3f}"
        color = "" if i % 5 == 4 else ["red", "green", "blue"][i % 3]
        lines.append(f"{x},{color},{'abc'[i % 3]}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fill_missing_layer():
    x = np.array([[1.5, np.nan], [np.nan, -2.0]], "float32")
    np.testing.assert_array_equal(FillMissing(value=7.0)(x), [[1.5, 7.0], [7.0, -2.0]])
    out = FillMissing(indicator=True)(x)
    np.testing.assert_array_equal(out, [[1.5, 0, 0, 1], [0, -2.0, 1, 0]])
    layer = FillMissing.from_config(FillMissing(value=2.0, indicator=True).get_config())
    assert (layer.value, layer.indicator) == (2.0, True)
    with pytest.raises(
        ValueError, match=r"^Argument `indicator` must be a bool. Received: indicator='false'$"
    ):
        FillMissing(indicator="false")  # was taken as True


def test_splits_and_statistics_come_from_the_training_rows_only(tmp_path):
    data = load_datasets(
        "csv", path=_csv(tmp_path), label="label", batch_size=8, validation_fraction=0.25, seed=3
    )
    info = data.info
    # 40 rows: 8 test (0.2), then 8 of the remaining 32 for validation (0.25), 24 train.
    assert (info.num_train, info.num_validation, info.num_test) == (24, 8, 8)
    assert info.task == "classification" and info.class_names == ("a", "b", "c")
    # x: normalized + missing indicator (2); color: one-hot over OOV + vocabulary.
    table = tables.read_csv_table(_csv(tmp_path), label="label")
    vocabulary = set(table.values["color"]) - {""}  # red, green, blue; '' is missing
    assert info.input_dim == 2 + 1 + len(vocabulary)
    train_x, train_y = data.train_examples.batch(100).get_single_element()
    normalized = train_x.numpy()[:, 0]
    present = train_x.numpy()[:, 1] == 0
    # Normalization fitted on the training rows: their present values have mean 0, std 1.
    np.testing.assert_allclose(normalized[present].mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized[present].std(), 1.0, atol=1e-4)
    np.testing.assert_array_equal(normalized[~present], 0.0)
    # Each split's rows are whole rows of the file, none in two splits.
    seen = [r for r in data.tabular.test.rows]
    assert len(set(seen)) == 8
    assert sorted(np.unique(train_y.numpy())) == [0, 1, 2]


def test_normalization_matches_keras_adapt_without_missing_values():
    values = np.array([1.0, 2.0, 4.0, 8.0])
    table = tables.Table("t", (tables.Column("v", "numeric"),), {"v": values}, None, np.arange(4))
    preprocessor = tabular.build_preprocessor(table)
    adapted = keras.layers.Normalization()
    adapted.adapt(values[:, None])  # Keras's own statistics, the reference
    np.testing.assert_allclose(
        tabular.preprocess(preprocessor, table)[:, 0],
        np.asarray(adapted(values[:, None].astype("float32")))[:, 0],
        rtol=1e-5,
    )


def test_preprocess_gives_the_same_rows_in_one_call_as_in_chunks(tmp_path):
    # The default chunk holds 32 MiB of output (every row of this table); chunks of 7 rows
    # (the last one short) must give the same float32 values bit for bit: each layer works
    # row by row.
    table = tables.read_csv_table(_csv(tmp_path), label="label")
    preprocessor = tabular.build_preprocessor(table)
    whole = tabular.preprocess(preprocessor, table)
    chunked = tabular.preprocess(preprocessor, table, batch_size=7)
    assert whole.shape == (40, 6) and whole.dtype == np.float32
    np.testing.assert_array_equal(whole.view(np.int32), chunked.view(np.int32))


def test_a_column_constant_in_training_is_centred_only():
    # Variance 0 in training once gave Normalization std 1e-7: another value at prediction
    # time became ~1e7. Expected by hand: variance 1, so the value minus the mean (5).
    values = np.array([5.0, 5.0, np.nan, 5.0])
    table = tables.Table("t", (tables.Column("v", "numeric"),), {"v": values}, None, np.arange(4))
    preprocessor = tabular.build_preprocessor(table)
    np.testing.assert_allclose(
        tabular.preprocess(preprocessor, table), [[0, 0], [0, 0], [0, 1], [0, 0]]
    )
    out = preprocessor({"v": np.array([[7.0], [2.0]], "float32")})
    np.testing.assert_allclose(out, [[2.0, 0], [-3.0, 0]], atol=1e-6)


def test_a_column_too_spread_for_float32_is_refused():
    # Values near 1e20 are float32 numbers, but their variance (9.22e39, np.var) is not:
    # Normalization's inf variance turned the column into zeros (numpy's standardized
    # values are -0.65, 0.39, 1.43, -1.17), and the run went on without a word.
    values = np.array([1e20, 2e20, 3e20, 5e19])
    table = tables.Table("t", (tables.Column("v", "numeric"),), {"v": values}, None, np.arange(4))
    with pytest.raises(DataError) as error:
        tabular.build_preprocessor(table)
    assert str(error.value) == (
        "t: column 'v' spreads too wide for the model's float32: its variance 9.22e+39 is "
        "beyond 3.4e38 (values up to 3e+20); give it in larger units, or leave it out of the "
        "file if it is an identifier"
    )
    x = np.stack([np.zeros(4), values], axis=1)  # an .npz's x: the feature is named
    table = tables.Table("t", (tables.Column("x", "numeric"),), {"x": x}, None, np.arange(4))
    with pytest.raises(DataError, match=r"^t: column 'x' feature 1 \(from 0\) spreads too"):
        tabular.build_preprocessor(table, indicators=False)


def test_an_npz_feature_constant_in_training_is_centred_only():
    # An always-0 border pixel beside a feature of mean 2 and variance 1 (by hand).
    x = np.array([[0.0, 1.0], [0.0, 3.0]])
    table = tables.Table("t", (tables.Column("x", "numeric"),), {"x": x}, None, np.arange(2))
    preprocessor = tabular.build_preprocessor(table, indicators=False)
    out = preprocessor({"x": np.array([[4.0, 2.0]], "float32")})
    np.testing.assert_allclose(out, [[4.0, 0.0]], atol=1e-6)


def test_unseen_strings_and_missing_numbers_at_prediction_time(tmp_path):
    train = tables.read_csv_table(_csv(tmp_path), label="label")
    preprocessor = tabular.build_preprocessor(train)
    inputs = {
        "x": np.array([[np.nan], [5.0]], "float32"),
        "color": np.array([["purple"], ["red"]], dtype=object),
    }
    out = np.asarray(preprocessor(inputs))
    assert np.isfinite(out).all()
    assert out[0, 1] == 1.0 and out[1, 1] == 0.0  # the missing indicator
    assert out[0, 2] == 1.0  # 'purple' lands in the out-of-vocabulary slot


def test_a_category_named_like_keras_unknown_token_keeps_its_own_slot(tmp_path):
    # keras.layers.StringLookup's oov_token is "[UNK]": a column holding that value lost its
    # slot to the unseen values' one, so "[UNK]" and "purple" (never seen) were one input.
    path = tmp_path / "unk.csv"
    path.write_text("color,label\n[UNK],a\nred,b\n[UNK],a\nblue,b\n")
    preprocessor = tabular.build_preprocessor(tables.read_csv_table(path, label="label"))
    colors = np.array([["[UNK]"], ["purple"], ["red"], ["blue"]], dtype=object)
    out = np.asarray(preprocessor({"color": colors}))
    assert out.shape == (4, 4)  # the unseen values' slot and one per category
    assert len({tuple(row) for row in out}) == 4


def test_a_test_file_and_npz(tmp_path):
    data = load_datasets(
        "csv",
        path=_csv(tmp_path),
        test_path=_csv(tmp_path, rows=9, name="test.csv"),
        label="label",
        batch_size=8,
        validation_fraction=0.0,
    )
    assert (data.info.num_train, data.info.num_validation, data.info.num_test) == (40, 0, 9)
    assert data.validation is None

    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(20, 2, 3)), y=rng.normal(size=20))
    data = load_datasets("npz", path=path, batch_size=4, validation_fraction=0.0)
    assert data.info.task == "regression" and data.info.input_dim == 6
    assert (data.info.num_train, data.info.num_test) == (16, 4)


def test_a_split_left_empty_is_refused(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text("x,y\n1,a\n2,b\n")
    with pytest.raises(DataError, match="data.test_fraction=0.2 leaves an empty test split"):
        load_datasets("csv", path=path, label="y", batch_size=2)
    # Too large a fraction empties the training split: the advice is a smaller one.
    # By hand: 2 rows x 0.9 rounds to 2 test rows; 5 rows leave 4 after 1 test row, and
    # 4 x 0.9 rounds to 4 validation rows.
    with pytest.raises(DataError, match=r"empty training split: .* Use a smaller fraction or"):
        load_datasets("csv", path=path, label="y", batch_size=2, test_fraction=0.9)
    path.write_text("x,y\n1,a\n2,b\n3,a\n4,b\n5,a\n")
    with pytest.raises(DataError, match=r"empty training split: 4 rows .* Use a smaller fraction$"):
        load_datasets("csv", path=path, label="y", batch_size=2, validation_fraction=0.9)


def test_a_header_that_cannot_name_an_input_still_round_trips(tmp_path):
    # "width (cm)" is no valid input name: the input is renamed, the dict keeps the header.
    values = np.array([1.0, 3.0, np.nan])
    table = tables.Table(
        "t", (tables.Column("width (cm)", "numeric"),), {"width (cm)": values}, None, np.arange(3)
    )
    preprocessor = tabular.build_preprocessor(table)
    assert tabular.input_name("width (cm)") == "width__cm_"
    assert tabular.input_name("sepal.length") == "sepal.length"
    path = tmp_path / "p.keras"
    preprocessor.save(path)
    reloaded = keras.models.load_model(path)
    inputs = {"width (cm)": values.astype("float32")[:, None]}
    # Expected by hand: mean 2, std 1 over the present values; the missing one is 0 with
    # its indicator set.
    np.testing.assert_allclose(reloaded(inputs), [[-1, 0], [1, 0], [0, 1]], atol=1e-6)


def test_columns_named_like_the_preprocessing_layers_do_not_collide(tmp_path):
    # Once "The name "features" is used 2 times in the model": kerasmlp's own layers were
    # named features, lookup_<input>, normalize_<input>, fill_<input>, flatten_<input>.
    names = ["features", "color", "lookup_color", "x", "normalize_x", "fill_x", "mlp_softmax"]
    names += ["kerasmlp_features"]
    kinds = {"color": "string", "lookup_color": "string"}
    columns = tuple(tables.Column(n, kinds.get(n, "numeric")) for n in names)
    values = {n: np.array([1.0, 3.0]) for n in names}
    values["color"] = values["lookup_color"] = np.array(["red", "blue"], dtype=object)
    table = tables.Table("t", columns, values, None, np.arange(2))
    preprocessor = tabular.build_preprocessor(table)
    layer_names = [layer.name for layer in preprocessor.layers]
    assert len(set(layer_names)) == len(layer_names)
    # The MLP beside them in the saved model is named mlp_<head>: the column takes another.
    assert preprocessor.input["mlp_softmax"].name == "mlp_softmax_"
    # kerasmlp's own layers take the prefix; a column that has it is renamed.
    assert preprocessor.get_layer("kerasmlp_normalize_x").name == "kerasmlp_normalize_x"
    assert preprocessor.input["kerasmlp_features"].name == "c_kerasmlp_features"
    path = tmp_path / "p.keras"
    preprocessor.save(path)
    reloaded = keras.models.load_model(path)
    # By hand: each numeric column is [1, 3] (mean 2, std 1) -> [-1, 1]; each string column
    # one-hot over [OOV, vocabulary of 2], so 6 numbers + 2 x 3 slots.
    out = tabular.preprocess(reloaded, table)
    assert out.shape == (2, 6 + 6)
    np.testing.assert_allclose(out[:, 0], [-1, 1], atol=1e-6)


def test_tfds_tables_through_the_same_preprocessing(tmp_path):
    # tfds.testing.mock_data: random examples of the real feature specs, no download.
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=30):
        iris = load_datasets("iris", batch_size=8, data_dir=tmp_path, validation_fraction=0.0)
        titanic = load_datasets("titanic", batch_size=8, data_dir=tmp_path)
    # iris: one 4-number feature vector, normalized per feature; classes from its ClassLabel.
    assert iris.info.class_names == ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
    assert iris.info.input_dim == 4
    assert (iris.info.num_train, iris.info.num_test) == (24, 6)  # 0.2 of TFDS's train split
    x, _ = iris.train_examples.batch(100).get_single_element()
    np.testing.assert_allclose(x.numpy().mean(axis=0), 0.0, atol=1e-5)
    # titanic: a dict of scalars; ClassLabel and text inputs become string columns.
    kinds = {c.name: c.kind for c in titanic.tabular.columns}
    assert kinds["age"] == "numeric" and kinds["sex"] == "string" and kinds["name"] == "string"
    assert titanic.info.class_names == ("died", "survived")  # TFDS's names, in id order
    assert titanic.tabular.label == "survived"
    assert np.isfinite(titanic.train_examples.batch(100).get_single_element()[0].numpy()).all()


def test_a_tfds_table_is_told_from_images_and_text():
    import tensorflow_datasets as tfds

    assert tabular.is_tfds_table(tfds.builder("iris").info)
    assert tabular.is_tfds_table(tfds.builder("titanic").info)
    assert not tabular.is_tfds_table(tfds.builder("mnist").info)
    assert not tabular.is_tfds_table(tfds.builder("imdb_reviews").info)


def test_a_string_column_keeps_its_most_frequent_values(monkeypatch):
    monkeypatch.setattr(tabular, "MAX_CATEGORIES", 3)  # 2 values + the shared slot
    values = np.array(["a", "a", "a", "b", "b", "c", "d"], dtype=object)
    table = tables.Table("t", (tables.Column("s", "string"),), {"s": values}, None, np.arange(7))
    out = tabular.preprocess(tabular.build_preprocessor(table), table)
    assert out.shape == (7, 3)
    # 'a' and 'b' (the most frequent) get their own slots; 'c' and 'd' share slot 0.
    np.testing.assert_array_equal(out[:, 0], [0, 0, 0, 0, 0, 1, 1])


def _integer_csv(tmp_path, name="rooms.csv", zone_extra=""):
    """zone (integer codes -1, 3, 7; one missing), rooms (a count), price class a/b."""
    lines = ["zone,rooms,price"]
    for i in range(30):
        zone = "" if i == 5 else [-1, 3, 7][i % 3]
        lines.append(f"{zone},{1 + i % 4},{'ab'[i % 2]}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n" + zone_extra)
    return path


def test_integer_columns_listed_in_data_categorical_go_through_integer_lookup(tmp_path):
    data = load_datasets(
        "csv",
        path=_integer_csv(tmp_path),
        label="price",
        categorical=["zone"],
        batch_size=8,
        validation_fraction=0.0,
    )
    kinds = {c.name: c.kind for c in data.tabular.columns}
    assert kinds == {"zone": "integer", "rooms": "numeric"}  # rooms is not listed: an amount
    preprocessor = data.tabular.preprocessor
    lookup = preprocessor.get_layer("kerasmlp_lookup_zone")
    assert isinstance(lookup, keras.layers.IntegerLookup)
    # The out-of-vocabulary token is one below the smallest code, so -1 keeps a slot of its own.
    vocabulary = [int(v) for v in lookup.get_vocabulary()]
    assert vocabulary[0] == -2 and sorted(vocabulary[1:]) == [-1, 3, 7]
    # zone one-hot (4 slots) + rooms normalized (no missing value: no indicator).
    assert data.info.input_dim == 4 + 1
    inputs = {
        "zone": np.array([[3], [-1], [99], [np.nan]], "float32"),  # seen, seen, unseen, missing
        "rooms": np.full((4, 1), 2.0, "float32"),
    }
    one_hot = np.asarray(preprocessor(inputs))[:, :4]
    slot = {v: i for i, v in enumerate(vocabulary)}
    expected = np.zeros((4, 4))
    expected[[0, 1, 2, 3], [slot[3], slot[-1], 0, 0]] = 1  # unseen and missing: the OOV slot
    np.testing.assert_array_equal(one_hot, expected)
    # Saved and loaded by Keras alone, it gives the same.
    path = tmp_path / "p.keras"
    preprocessor.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path)(inputs), preprocessor(inputs))


@pytest.mark.parametrize(
    "categorical, extra, message",
    [
        (["zone"], "2.5,1,a\n", r"rooms.csv row 32, column 'zone': '2.5' is not a whole number"),
        (["zone"], "99999999,1,a\n", r"'99999999' is not within \+-2\^24"),
        (["zon"], "", r"has no column 'zon' \(data.categorical\). Did you mean 'zone'\?"),
        (["price"], "", r"data.categorical lists the label column 'price'"),
        (["zone", "zone"], "", r"data.categorical lists a column twice"),
    ],
    ids=["fraction", "too-large", "unknown", "label", "twice"],
)
def test_data_categorical_mistakes_name_the_column(tmp_path, categorical, extra, message):
    path = _integer_csv(tmp_path, zone_extra=extra)
    with pytest.raises(DataError, match=message):
        tables.read_csv_table(path, label="price", categorical=categorical)


def test_a_file_to_predict_keeps_the_integer_kind(tmp_path):
    # A test or prediction file is read with the training columns: 2.5 is refused there too.
    columns = (tables.Column("zone", "integer"), tables.Column("rooms", "numeric"))
    path = _integer_csv(tmp_path, zone_extra="2.5,1,a\n")
    with pytest.raises(DataError, match=r"row 32, column 'zone': '2.5' is not a whole number"):
        tables.read_csv_table(path, label="price", columns=columns)


def test_predicting_integer_codes_refuses_what_the_csv_reader_refuses(tmp_path):
    # A dict given to run.predict went through unchecked above 2^24, where float32 rounds codes
    # together (16777217 is 16777216, a code of another category); a CSV refuses them.
    from kerasmlp.inference import load_run
    from tests.conftest import invoke_train

    path = _integer_csv(tmp_path)
    args = ["--logdir", str(tmp_path / "logs"), "--run-name", "zones", "--epochs", "1"]
    for setting in [
        "data.name=csv",
        f"data.path={path}",
        "data.label=price",
        "data.categorical=[zone]",
        "model.hidden_units=[4]",
        "train.histogram_every_epochs=0",
        "train.image_every_epochs=0",
    ]:
        args += ["--set", setting]
    assert invoke_train(args).exit_code == 0
    run = load_run(tmp_path / "logs" / "zones")
    assert run.predict_proba({"zone": [3, 16777216], "rooms": [2, 2]}).shape == (2, 2)
    for code, why in [(16777217, r"within \+-2\^24"), (2.5, "a whole number")]:
        with pytest.raises(DataError, match=rf"^column 'zone': {code!r} is not {why} \("):
            run.predict_proba({"zone": [3, code], "rooms": [2, 2]})


def test_a_price_written_with_a_currency_sign_is_named_at_load_time(tmp_path):
    # "$3.20" is no number to the reader: the column is categories, silently until a line
    # on the console named it (tables.numbers_as_text); a column of words gets none.
    from tests.conftest import invoke_train

    lines = ["price,color,kind"] + [
        f"${1 + i * 0.25:.2f},{['red', 'blue'][i % 2]},{'ab'[i % 2]}" for i in range(30)
    ]
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(lines) + "\n")
    args = ["--logdir", str(tmp_path / "logs"), "--run-name", "p", "--epochs", "1"]
    for setting in [
        "data.name=csv",
        f"data.path={path}",
        "data.label=kind",
        "model.hidden_units=[4]",
        "train.histogram_every_epochs=0",
        "train.image_every_epochs=0",
    ]:
        args += ["--set", setting]
    result = invoke_train(args)
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if "is read as categories" in line]
    assert said == [
        "data       | column 'price' is read as categories (30 distinct values), yet its "
        "values are numbers in other writing ('$1.00'): if it is an amount, write plain "
        "numbers in the file (a decimal point; no currency sign, no thousands separator)"
    ]

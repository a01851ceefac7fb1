"""Sources of (x, y) examples read from a TFDS builder: the generated 2-D sets and image datasets.

Both split the same way: validation is the last `validation_fraction` of TFDS's
train split (``train[:54000]`` and ``train[54000:]`` for MNIST), test is TFDS's
test split. Each split is decoded, cached in memory when it fits (and `cache`
is on), then batched; train is shuffled with the seed before batching and
reshuffled at every pass.

Images stay as TFDS decodes them: uint8 of shape (28, 28, 1) for MNIST. The
model scales and flattens them in its first layers (`DatasetInfo.input_scale`,
see `kerasmlp.model.build_model`), so the saved model takes raw images, and a
split held in memory is a quarter of its float32 size. The generated sets'
points are float32 vectors, as the model takes them.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasmlp import sources
from kerasmlp.sources.common import (
    MAX_CACHE_BYTES,
    DataError,
    DataRequest,
    DatasetInfo,
    Datasets,
    TfdsSource,
)

_GENERATED_NAMES = ", ".join(sources.BY_KIND["generated"].names)


class GeneratedSource(TfdsSource):
    """A generated 2-D set (`kerasmlp.playground`): float32 points, a class or a target."""

    kind = "generated"

    @classmethod
    def accepts(cls, builder) -> bool:
        return builder.name == sources.GENERATED_BUILDER

    def load(self, request: DataRequest) -> Datasets:
        info = self.builder.info
        x_key, y_key = info.supervised_keys
        # From the features, not builder_config.task: a versioned name that is
        # prepared already gets TFDS's ReadOnlyBuilder, with a plain BuilderConfig.
        is_label = isinstance(info.features[y_key], tfds.features.ClassLabel)
        task = "classification" if is_label else "regression"
        return examples_datasets(self.prepare(self.builder), x_key, y_key, task, request)


class TfdsImageSource(TfdsSource):
    """A TFDS image-classification dataset of fixed-size images (mnist, fashion_mnist, ...).

    Raises (when made):
      DataError: the dataset is not (image, class label) pairs, or its images vary in size.
    """

    kind = "tfds_image"

    def __init__(self, name: str, builder, prepare=lambda b: b):
        super().__init__(name, builder, prepare)
        self.x_key, self.y_key = _check_images(name, builder)

    @classmethod
    def accepts(cls, builder) -> bool:
        return True  # the last one asked: refuses what it cannot serve, naming why

    def load(self, request: DataRequest) -> Datasets:
        return examples_datasets(
            self.prepare(self.builder), self.x_key, self.y_key, "classification", request
        )


def _check_images(name: str, builder) -> tuple[str, str]:
    """Returns (x key, y key) or raises DataError for a dataset that is not fixed-size images."""
    info = builder.info
    keys = info.supervised_keys
    ok = isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)
    if ok:
        x_feature, y_feature = info.features[keys[0]], info.features[keys[1]]
        ok = isinstance(x_feature, tfds.features.Image) and isinstance(
            y_feature, tfds.features.ClassLabel
        )
    if not ok:
        raise DataError(
            f"Dataset {name!r} (data.name) is not an image-classification dataset "
            f"(supervised keys: {keys}); use a playground dataset ({_GENERATED_NAMES}) "
            "or a TFDS dataset of (image, label) pairs such as mnist or fashion_mnist."
        )
    if None in x_feature.shape:
        raise DataError(
            f"Dataset {name!r} (data.name) has images of varying size {x_feature.shape}; "
            "kerasmlp needs fixed-size images to flatten, such as mnist or fashion_mnist."
        )
    return keys[0], keys[1]


def examples_datasets(builder, x_key: str, y_key: str, task: str, request: DataRequest) -> Datasets:
    """The train, validation and test pipelines of a prepared builder's (x, y) examples."""
    name = request.name
    validation_fraction = request.validation_fraction
    splits = builder.info.splits
    # Some image sets are test sets only (cifar10_1, cifar10_corrupted): no 'train' to train on.
    for split, use in (("train", "trains on"), ("test", "evaluates on")):
        if split not in splits and splits:
            raise DataError(
                f"Dataset {name!r} (data.name) has no {split!r} split (it has: "
                f"{', '.join(splits)}); kerasmlp {use} TFDS's {split} split."
            )
    if request.test_fraction != DataRequest.test_fraction:
        raise DataError(
            f"data.test_fraction applies to tables and your own files; {name!r} (data.name) "
            f"has a test split of its own. Received: data.test_fraction={request.test_fraction}"
        )
    num_total = _num_examples(builder, "train")
    num_validation = int(round(num_total * validation_fraction))
    num_train = num_total - num_validation
    if num_train <= 0 or (validation_fraction > 0 and num_validation == 0):
        advice = (
            "a smaller fraction"
            if num_train <= 0
            else f"0 to disable validation, or a fraction of at least {1 / num_total:.2g}"
        )
        raise DataError(
            f"train.validation_fraction={validation_fraction!r} leaves an empty "
            f"{'training' if num_train <= 0 else 'validation'} split: {name!r} has "
            f"{num_total} training examples. Use {advice}."
        )

    features = builder.info.features
    input_shape = tuple(int(d) for d in features[x_key].shape) or (1,)
    input_dim = int(np.prod(input_shape))
    convert, input_dtype, input_scale = _make_converter(features[x_key], task, input_shape)
    bytes_per_example = input_dim * np.dtype(input_dtype).itemsize

    def decoded(spec: str) -> tuple[tf.data.Dataset, int]:
        ds = builder.as_dataset(split=spec, as_supervised=True, shuffle_files=False)
        ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
        count = int(ds.cardinality())
        if count < 0:  # Unknown cardinality: trust TFDS's split record.
            count = _num_examples(builder, spec)
        return ds, count

    def fits(count: int) -> bool:
        return request.cache and count * bytes_per_example <= MAX_CACHE_BYTES

    def split(spec: str) -> tuple[tf.data.Dataset, int]:
        ds, count = decoded(spec)
        return (ds.cache() if fits(count) else ds), count

    batch_size = request.batch_size
    train_spec, validation_spec = f"train[:{num_train}]", f"train[{num_train}:]"
    train_examples, _ = decoded(train_spec if num_validation else "train")
    train, num_train = split(train_spec if num_validation else "train")
    train = train.shuffle(
        min(request.shuffle_buffer, max(num_train, 1)),
        seed=request.seed,
        reshuffle_each_iteration=True,
    )
    train = train.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    validation = None
    if num_validation:
        validation, num_validation = split(validation_spec)
        validation = validation.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    test, num_test = split("test")
    test = test.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    label = features[y_key]
    class_names = tuple(label.names) if task == "classification" else None
    info = DatasetInfo(
        name=name,
        task=task,
        num_classes=len(class_names) if class_names is not None else None,
        class_names=class_names,
        input_shape=input_shape,
        input_dim=input_dim,
        num_train=num_train,
        num_validation=num_validation,
        num_test=num_test,
        input_dtype=input_dtype,
        input_scale=input_scale,
    )
    return Datasets(
        train=train,
        validation=validation,
        test=test,
        info=info,
        train_examples=train_examples,
        train_fits_in_memory=fits(num_train),
    )


def _make_converter(x_feature, task: str, input_shape: tuple[int, ...]):
    """The map function, and the dtype and scale of the x it gives.

    An integer image stays as it is (uint8, its own shape) with the scale that
    takes it to [0, 1] (1/255), applied by the model; any other x becomes
    float32 (flat, unless it is an image) with no scale. y becomes int32 class
    ids or float32 targets.

    Returns:
      (convert, input dtype name, input scale or None).
    """
    dtype = np.dtype(x_feature.np_dtype)
    y_dtype = tf.int32 if task == "classification" else tf.float32
    is_image = isinstance(x_feature, tfds.features.Image)
    if is_image and np.issubdtype(dtype, np.integer):
        scale = 1.0 / np.iinfo(dtype).max

        def convert(x, y):
            return tf.ensure_shape(x, input_shape), tf.cast(y, y_dtype)

        return convert, dtype.name, scale
    shape = list(input_shape) if is_image else [int(np.prod(input_shape))]

    def convert(x, y):
        return tf.reshape(tf.cast(x, tf.float32), shape), tf.cast(y, y_dtype)

    return convert, "float32", None


def _num_examples(builder, split: str) -> int:
    """Examples in `split`, from TFDS's record or, when it has none (mock data), by counting."""
    if builder.info.splits:
        return int(builder.info.splits[split].num_examples)
    return int(builder.as_dataset(split=split).cardinality())

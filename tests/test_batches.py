"""kerasmlp.batches: the seeded in-memory batches, and each replica's rows of a global batch.

The reference for "a replica's share" is the one-device batch: the replicas'
rows, concatenated in replica order, must be that batch, for every replica
count and for the smaller last batch of an epoch. No strategy is needed to
check it: `replica_rows` and `replica_batch` are what each replica calls.
"""

import numpy as np
import pytest
import tensorflow as tf

from kerasmlp.batches import GlobalBatchIterator, InMemoryBatches, replica_rows

# 10 examples in batches of 4: two full batches, then one of 2 (a smaller last batch).
NUM_EXAMPLES, BATCH_SIZE = 10, 4


def _examples():
    features = np.arange(NUM_EXAMPLES * 3, dtype="float32").reshape(NUM_EXAMPLES, 3)
    labels = np.arange(NUM_EXAMPLES, dtype="int32")
    return features, labels


@pytest.mark.parametrize(
    "global_size,replicas,expected",
    [
        # By hand: ceil(size / replicas) rows each, in replica order, clipped to the batch.
        (4, 1, [(0, 4)]),
        (4, 2, [(0, 2), (2, 4)]),
        (4, 3, [(0, 2), (2, 4), (4, 4)]),
        (2, 4, [(0, 1), (1, 2), (2, 2), (2, 2)]),
        (0, 2, [(0, 0), (0, 0)]),
    ],
    ids=["one", "even", "uneven", "fewer-rows-than-replicas", "empty"],
)
def test_replica_rows_split_a_global_batch_in_order(global_size, replicas, expected):
    rows = [
        tuple(int(v) for v in replica_rows(tf.constant(global_size), tf.constant(r), replicas))
        for r in range(replicas)
    ]
    assert rows == expected


@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
def test_replicas_gather_exactly_the_one_device_batch(replicas):
    features, labels = _examples()
    one_device = InMemoryBatches(features, labels, batch_size=BATCH_SIZE, seed=7)
    distributed = InMemoryBatches(features, labels, batch_size=BATCH_SIZE, seed=7)
    # Two epochs: full batches, the smaller last batch, and a reshuffle.
    for _ in range(2 * one_device.steps_per_epoch):
        want_features, want_labels = next(one_device)
        indices, global_size = distributed.next_global()
        assert int(global_size) == len(want_labels)
        parts = [
            distributed.replica_batch(indices, *replica_rows(global_size, r, replicas))
            for r in range(replicas)
        ]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), want_features)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), want_labels)
    assert int(distributed.epoch) == int(one_device.epoch) == 2


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_replicas_slice_exactly_a_tf_data_batch(replicas):
    features, labels = _examples()
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH_SIZE)
    source = GlobalBatchIterator(iter(dataset))
    for want_features, want_labels in dataset:
        batch, global_size = source.next_global()
        parts = [
            source.replica_batch(batch, *replica_rows(global_size, r, replicas))
            for r in range(replicas)
        ]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), want_features)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), want_labels)

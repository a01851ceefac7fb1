"""kerasmlp.metrics under tf.distribute.MirroredStrategy over two logical CPU devices.

Logical devices can only be configured before TensorFlow initialises, so the
work runs once in a fresh process (tests/_metrics_mirrored.py) and the tests
below read its JSON report. The single-device values it compares against are
themselves checked against scikit-learn and numpy in tests/test_metrics.py.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = pathlib.Path(__file__).with_name("_metrics_mirrored.py")

METRIC_NAMES = [
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "confusion_matrix",
    "precision_micro",
    "recall_none",
    "f1_macro",
    "f1_weighted",
    "expected_calibration_error",
    "mean_squared_error",
    "root_mean_squared_error",
]


@pytest.fixture(scope="module")
def report():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(WORKER)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_replicas_each_get_half_of_the_global_batch(report):
    assert report["num_replicas_in_sync"] == 2
    # Global batch 64 split by MirroredStrategy: 32 examples per replica.
    assert report["first_batch_sizes_per_replica"] == [32, 32]


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_distributed_result_equals_single_device(report, name):
    distributed, single = report["results"][name]
    # Expected: the same metric fed every global batch on one device. Only the
    # order of float32 additions differs, hence the tolerance.
    np.testing.assert_allclose(distributed, single, rtol=1e-6, atol=1e-6)
    assert np.any(np.asarray(single) != 0), "the comparison would be vacuous"


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_reset_state_clears_every_replica(report, name):
    # By hand: nothing accumulated after a reset reads 0 for every metric here.
    np.testing.assert_array_equal(np.asarray(report["after_reset"][name]), 0.0)
    # A second epoch after the reset equals the first: no replica kept old counts.
    np.testing.assert_allclose(
        report["second_epoch"][name], report["results"][name][0], rtol=1e-6, atol=1e-6
    )

"""Times kerasmlp's training loop against Keras `fit`, a minimal loop and PyTorch, side by side.

In one process, on the same arrays, model, loss, optimizer (Adam with the
config's exponential decay) and batch size, each of these loops trains:

- `kerasmlp`: the real `Trainer`, fed by `InMemoryBatches` and driven by a
  `Controller` (no actions) in calls of `train.log_every_steps` steps, as
  `kerasmlp-train` trains a split that fits in memory, with its optimizer
  (`kerasmlp.optimizers.Adam`: each variable's update one fused kernel);
- `kerasmlp_keras_adam` (not run by default): the same loop with
  `keras.optimizers.Adam`, whose update is a dozen element-wise ops: what the
  fused update saves;
- `fit`: Keras `model.fit(x, y, batch_size=...)` on the numpy arrays, defaults,
  with `keras.optimizers.Adam` as a `fit` user has it (as do the loops below);
- `fit_spe32`: the same with `compile(steps_per_execution=32)`;
- `minimal`: a compiled Keras loop with nothing but the step: the split as
  one tensor, one `tf.function` call per epoch gathering each batch by a
  per-epoch permutation; no metrics, no gradient norm, no checks (and Keras's
  Adam, so the fused update puts kerasmlp's loop ahead of it);
- `torch`: a PyTorch eager loop (same layer sizes, initial weights copied from
  the Keras model, `torch.optim.Adam` with `eps=1e-7` as Keras's, the decay as
  `ExponentialLR` stepped every batch), when `torch` is importable; otherwise
  one "skipped" line. PyTorch is not a dependency of kerasmlp. Its OpenMP
  threads wait for each other by spinning: on 2 cores that other processes
  kept busy, 2 threads ran 4-17x slower than 1 (`--torch-threads 1`), and
  unsteadily.
- every loop above in `mixed_bfloat16` as well, when asked for with a `_bf16`
  suffix (`--loops kerasmlp_bf16 fit_bf16 minimal_bf16 torch_bf16`): the Keras
  loops with the hidden layers under Keras's policy (head and loss float32, as
  `train.precision` does), torch under CPU autocast; compared with
  `kerasmlp_bf16`, and measured against the bfloat16 matrix-product rate.

The Keras loops compute the configured metrics (accuracy) as they train; the
torch loop counts correct predictions in a tensor read once an epoch;
`minimal` computes none.
Each loop is built and warmed up (one untimed epoch: tracing) once, then every
round times `--epochs` epochs of each, the order rotating from round to round.
Printed: samples/s per round, then best and median of each loop (and the CPU
cores its process kept busy: below the thread count, other processes had the
rest), the ratios kerasmlp / each other loop (from the best rounds, and the
median of the per-round ratios: each round's loops share the machine's state
of the moment).

It also measures the machine's matrix-product rate (float32 and bfloat16, a
256x784 @ 784x1024 product, the shape of the MNIST config's first layer) before
and after every loop's round, and each loop's share of the float32 bound, with
`flops_per_example` below, two ways: its best round against the best product
of the whole run, and the median over rounds of each round's rate against the
better of the two products measured around it (on a machine whose speed
drifts, the first reads low when the run's best product came from a fast
moment the loop's round did not have). The summaries come after all rounds.

    python benchmarks/train_loop_vs_fit.py                        # both models, random data
    python benchmarks/train_loop_vs_fit.py --models config --repeats 5
    python benchmarks/train_loop_vs_fit.py --config configs/default.yaml --models config
    python benchmarks/train_loop_vs_fit.py --data mnist --manual-dir ../shared/data/mnist

`--models` picks among `config` (`--config` as it is; the default,
configs/mnist.yaml, is [1024, 256], dropout 0.3, batch 256) and `seeds` (the
same config with the seeds' [256, 128, 64, 32], no dropout, batch 128); `--set`
applies to both. The default data is random: 20,000 examples of MNIST's shape
(784 features in [0, 1), 10 classes), which is all that throughput depends on.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasmlp.batches import InMemoryBatches  # noqa: E402
from kerasmlp.components import make_loss, make_metrics, make_optimizer  # noqa: E402
from kerasmlp.config import load_config  # noqa: E402
from kerasmlp.controller import Controller  # noqa: E402
from kerasmlp.model import Head, build_model  # noqa: E402
from kerasmlp.train import Trainer  # noqa: E402

PRESETS = {
    "config": (),
    "seeds": (
        "model.hidden_units=[256,128,64,32]",
        "model.dropout=0.0",
        "train.batch_size=128",
    ),
}
LOOPS = ("kerasmlp", "fit", "fit_spe32", "minimal", "torch")
# Each loop in mixed_bfloat16 as well (`--loops kerasmlp_bf16 fit_bf16 ...`); not run by
# default. Their share is of the bfloat16 bound, and they are compared with kerasmlp_bf16.
BF16 = "_bf16"
BF16_LOOPS = tuple(name + BF16 for name in LOOPS)
# Not run by default: kerasmlp's loop with Keras's own Adam, to see what the fused update saves.
EXTRA_LOOPS = ("kerasmlp_keras_adam",)
MATMUL_SHAPE = (256, 784, 1024)  # (m, k, n): a 256x784 batch times a 784x1024 kernel


def flops_per_example(layer_sizes: list[int]) -> float:
    """FLOPs of one example's forward and backward pass through a Dense stack: 6 * sum(in * out).

    Forward, each Dense layer multiplies and adds once per weight (2 * in * out);
    backward, twice that (the gradient of the weights and of the layer's inputs).
    Biases, activations, dropout, the loss and the optimizer update are left out
    (they are O(units), not O(weights)); the first layer's input gradient, which
    backpropagation does not need, is counted, as the usual rule counts it.

    Args:
      layer_sizes: widths from input to output, e.g. [784, 1024, 256, 10].

    Returns:
      FLOPs per example, e.g. 6 * (784*1024 + 1024*256 + 256*10) = 6,405,120.
    """
    return 6.0 * sum(a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:], strict=True))


class MatmulRate:
    """The rate of `tf.linalg.matmul` on a MATMUL_SHAPE product in a tf.function, GFLOP/s.

    Each call multiplies one batch by `products` different kernels (different, so
    that the graph optimizer cannot merge them). `measure` is called between the
    loops' rounds and returns that measurement's best rate per dtype; `best` keeps
    the best over the whole run, the rate the machine has at its fastest.
    """

    def __init__(self, dtypes=(tf.float32, tf.bfloat16), *, products: int = 8):
        m, k, n = MATMUL_SHAPE
        rng = np.random.default_rng(0)
        self.flops = 2.0 * m * k * n * products
        self.inputs = {
            dtype: (
                tf.cast(rng.random((m, k), dtype=np.float32), dtype),
                [tf.cast(rng.random((k, n), dtype=np.float32), dtype) for _ in range(products)],
            )
            for dtype in dtypes
        }
        self.products_of = tf.function(lambda a, bs: [tf.linalg.matmul(a, b) for b in bs])
        self.best = {dtype: 0.0 for dtype in dtypes}
        self.lowest = {dtype: math.inf for dtype in dtypes}  # of the measurements' bests
        self.calls = 0
        for a, bs in self.inputs.values():
            for _ in range(3):  # traces, then lets the matmul library set up its kernels
                self.products_of(a, bs)[0].numpy()

    def measure(self, repeats: int) -> dict:
        """The best of `repeats` calls now, GFLOP/s per dtype; updates `best`."""
        now = {}
        for dtype, (a, bs) in self.inputs.items():
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                for c in self.products_of(a, bs):
                    c.numpy()
                rates.append(self.flops / (time.perf_counter() - start) / 1e9)
            now[dtype] = max(rates)
            self.best[dtype] = max(self.best[dtype], now[dtype])
            self.lowest[dtype] = min(self.lowest[dtype], now[dtype])
        self.calls += repeats
        return now


def load_arrays(args, config) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat float32 features, int32 labels and the number of classes. For a TFDS set,
    `--data-dir` and `--manual-dir`, or else the config's `data.data_dir` and
    `data.manual_dir` (which a data error names)."""
    if args.data == "random":
        rng = np.random.default_rng(0)
        x = rng.random((args.examples, 784), dtype=np.float32)
        y = rng.integers(0, 10, size=args.examples).astype(np.int32)
        return x, y, 10
    from kerasmlp.data import load_datasets

    # A fresh data_dir is removed once the split is in arrays (it held a prepared copy).
    with tempfile.TemporaryDirectory() as scratch:
        data = load_datasets(
            args.data,
            batch_size=4096,
            validation_fraction=0.0,
            data_dir=args.data_dir or config.data.data_dir or scratch,
            manual_dir=args.manual_dir or config.data.manual_dir,
        )
        xs, ys = zip(*data.train.as_numpy_iterator(), strict=True)
    # TFDS images arrive raw (uint8, their own shape): flat floats in [0, 1] here, the
    # same input for every loop compared.
    x = np.concatenate(xs).reshape(-1, data.info.input_dim).astype(np.float32)
    if data.info.input_scale is not None:
        x *= data.info.input_scale
    return x, np.concatenate(ys), data.info.num_classes


def make_parts(config, input_dim, num_classes, precision=None, *, fused=False):
    """Model (hidden layers under the `precision` policy, e.g. 'mixed_bfloat16'), loss,
    optimizer and head, as kerasmlp builds them; the head stays float32. The optimizer
    is kerasmlp's (fused) or Keras's own class (see `make_optimizer`)."""
    keras.utils.set_random_seed(config.seed)
    head = Head("softmax", num_classes)
    # Every loop trains the same step on flat features: the training shift of images
    # (model.random_translation) is an input stage the other loops do not have.
    flat = dataclasses.replace(config.model, random_translation=0.0)
    model = build_model(
        flat, input_dim=input_dim, head=head, seed=config.seed, dtype_policy=precision
    )
    optimizer = make_optimizer(config.optimizer, fused=fused)
    return model, make_loss(config.loss), optimizer, head


class KerasmlpLoop:
    """The real Trainer on InMemoryBatches, driven by a Controller as kerasmlp-train does."""

    def __init__(self, config, x, y, num_classes, precision=None, *, fused=True):
        model, loss, optimizer, head = make_parts(
            config, x.shape[1], num_classes, precision, fused=fused
        )
        trainer = Trainer(model, loss, optimizer, head=head, metric_names=config.metrics)
        batches = InMemoryBatches(x, y, batch_size=config.train.batch_size, seed=config.seed)
        self.runner = trainer.bind(batches)
        self.steps_per_epoch = batches.steps_per_epoch
        self.log_every_steps = config.train.log_every_steps

    def train(self, epochs: int) -> None:
        Controller(
            self.runner,
            epochs=epochs,
            steps_per_epoch=self.steps_per_epoch,
            log_every_steps=self.log_every_steps,
        ).train()


class FitLoop:
    """`model.fit` on the numpy arrays, with `steps_per_execution` (1 is Keras's default)."""

    def __init__(self, config, x, y, num_classes, *, steps_per_execution=1, precision=None):
        model, loss, optimizer, head = make_parts(config, x.shape[1], num_classes, precision)
        model.compile(
            optimizer=optimizer,
            loss=loss,
            # A plain list: compile reads it with optree, which takes a list subclass
            # (MetricList) for one leaf.
            metrics=list(make_metrics(config.metrics, head)),
            steps_per_execution=steps_per_execution,
        )
        self.model, self.x, self.y, self.batch_size = model, x, y, config.train.batch_size

    def train(self, epochs: int) -> None:
        self.model.fit(self.x, self.y, batch_size=self.batch_size, epochs=epochs, verbose=0)


class MinimalLoop:
    """One tf.function call per epoch over the split held as one tensor; nothing but the step."""

    def __init__(self, config, x, y, num_classes, precision=None):
        self.model, self.loss, self.optimizer, _ = make_parts(
            config, x.shape[1], num_classes, precision
        )
        self.x, self.y = tf.constant(x), tf.constant(y)
        self.batch_size = config.train.batch_size
        self.steps = math.ceil(len(x) / self.batch_size)
        self.epoch = 0
        self.epoch_loop = tf.function(self._epoch_loop)

    def _epoch_loop(self, permutation):
        loss_sum = tf.constant(0.0)
        variables = self.model.trainable_variables
        for i in tf.range(self.steps):
            indices = permutation[i * self.batch_size : (i + 1) * self.batch_size]
            features, labels = tf.gather(self.x, indices), tf.gather(self.y, indices)
            with tf.GradientTape() as tape:
                loss = self.loss(labels, self.model(features, training=True))
            gradients = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            loss_sum += loss
        return loss_sum

    def train(self, epochs: int) -> None:
        for _ in range(epochs):
            self.epoch += 1
            seed = tf.constant([0, self.epoch], tf.int64)
            permutation = tf.random.experimental.stateless_shuffle(
                tf.range(self.x.shape[0]), seed=seed
            )
            self.epoch_loop(permutation).numpy()


def torch_loop_refusal(config) -> str | None:
    """Why the torch loop cannot train `config`'s step (it builds ReLU layers and Adam
    only), or None."""
    if config.model.activation != "relu":
        return f"builds ReLU layers only. Received: model.activation={config.model.activation}"
    if config.optimizer.name != "adam":
        return f"uses Adam only. Received: optimizer.name={config.optimizer.name}"
    return None


class TorchLoop:
    """A PyTorch eager loop: the same layers, initial weights, optimizer, schedule and loss."""

    def __init__(self, config, x, y, num_classes, precision=None):
        import torch

        if refusal := torch_loop_refusal(config):  # `main` says so before any work
            raise ValueError(f"the torch loop {refusal}")
        self.torch = torch
        # bfloat16: the forward pass under CPU autocast (matrix products in bfloat16,
        # cross-entropy in float32), weights and Adam in float32, as Keras's policy does.
        self.autocast = precision == "mixed_bfloat16"
        torch.manual_seed(config.seed)
        keras_model, _, _, _ = make_parts(config, x.shape[1], num_classes)
        layers = []
        dense = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Dense)]
        for i, layer in enumerate(dense):
            kernel, bias = (w.numpy() for w in layer.weights)
            linear = torch.nn.Linear(*kernel.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
                linear.bias.copy_(torch.from_numpy(bias))
            layers.append(linear)
            if i < len(dense) - 1:
                layers.append(torch.nn.ReLU())
                if config.model.dropout:
                    layers.append(torch.nn.Dropout(config.model.dropout))
        self.model = torch.nn.Sequential(*layers)
        lr = config.optimizer.learning_rate
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=lr.initial_learning_rate, eps=1e-7
        )
        if lr.staircase:
            self.schedule = torch.optim.lr_scheduler.StepLR(
                self.optimizer, step_size=lr.decay_steps, gamma=lr.decay_rate
            )
        else:  # decay_rate ** (step / decay_steps), one factor per step
            self.schedule = torch.optim.lr_scheduler.ExponentialLR(
                self.optimizer, gamma=lr.decay_rate ** (1.0 / lr.decay_steps)
            )
        self.label_smoothing = config.loss.label_smoothing
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y).long()
        self.batch_size = config.train.batch_size
        self.generator = torch.Generator().manual_seed(config.seed)

    def train(self, epochs: int) -> None:
        torch, functional = self.torch, self.torch.nn.functional
        self.model.train()
        for _ in range(epochs):
            permutation = torch.randperm(len(self.x), generator=self.generator)
            loss_sum = torch.zeros(())
            correct = torch.zeros((), dtype=torch.long)
            for start in range(0, len(self.x), self.batch_size):
                indices = permutation[start : start + self.batch_size]
                features, labels = self.x[indices], self.y[indices]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
                    logits = self.model(features)
                    loss = functional.cross_entropy(
                        logits, labels, label_smoothing=self.label_smoothing
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.schedule.step()
                with torch.no_grad():
                    loss_sum += loss * len(indices)
                    correct += (logits.argmax(1) == labels).sum()
            loss_sum.item(), correct.item()  # the epoch's one read, as the others do


def torch_version(threads: int | None) -> str | None:
    """torch's version and thread count (setting it first when `threads`), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    if threads:
        torch.set_num_threads(threads)
    return f"{torch.__version__}, {torch.get_num_threads()} threads"


def make_loops(names, config, x, y, num_classes) -> dict:
    """The loops by name; a `_bf16` suffix trains the same loop in mixed_bfloat16."""
    makers = {
        "kerasmlp": KerasmlpLoop,
        "kerasmlp_keras_adam": lambda *a, **k: KerasmlpLoop(*a, fused=False, **k),
        "fit": FitLoop,
        "fit_spe32": lambda *a, **k: FitLoop(*a, steps_per_execution=32, **k),
        "minimal": MinimalLoop,
        "torch": TorchLoop,
    }
    loops = {}
    for name in names:
        base, bf16 = name.removesuffix(BF16), name.endswith(BF16)
        precision = "mixed_bfloat16" if bf16 else None
        loops[name] = makers[base](config, x, y, num_classes, precision=precision)
    return loops


def bench_model(preset, args, x, y, num_classes, loop_names, matmul) -> dict:
    """Rounds of every loop on one model; returns what `print_summary` prints."""
    config = load_config(args.config, [*PRESETS[preset], *args.overrides])
    units = list(config.model.hidden_units)
    flops = flops_per_example([x.shape[1], *units, num_classes])
    title = (
        f"model {preset} ({os.path.basename(args.config)}) | {units} -> {num_classes}, "
        f"{config.model.activation}, dropout {config.model.dropout}, "
        f"batch {config.train.batch_size} | {flops / 1e6:.2f} MFLOP/example (6 * sum(in*out))"
    )
    print(title)
    loops = make_loops(loop_names, config, x, y, num_classes)
    for loop in loops.values():
        loop.train(1)  # warm-up: traces the compiled functions, fills caches
    samples = len(x) * args.epochs
    rates: dict[str, list[float]] = {name: [] for name in loops}
    # CPU seconds of this process (all its threads) per wall second: how much of the
    # machine a loop got (or spent spinning); on idle cores near the thread count.
    cores: dict[str, list[float]] = {name: [] for name in loops}
    # Each round's bound: the better product measured just before and just after it.
    nearby: dict[str, list[dict]] = {name: [] for name in loops}
    names = list(loops)
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        before = matmul.measure(args.matmul_repeats)
        for name in order:
            start, cpu = time.perf_counter(), time.process_time()
            loops[name].train(args.epochs)
            wall = time.perf_counter() - start
            rates[name].append(samples / wall)
            cores[name].append((time.process_time() - cpu) / wall)
            after = matmul.measure(args.matmul_repeats)
            nearby[name].append({dtype: max(before[dtype], after[dtype]) for dtype in after})
            before = after
        print(
            f"round {r + 1:>2} | "
            + " | ".join(f"{name} {rates[name][-1]:,.0f}" for name in names)
            + " samples/s"
        )
    return {"title": title, "flops": flops, "rates": rates, "cores": cores, "nearby": nearby}


def print_summary(result, f32_gflops: float, bf16_gflops: float, *, torch_skipped: bool) -> None:
    rates, cores = result["rates"], result["cores"]
    bounds = {False: f32_gflops * 1e9 / result["flops"], True: bf16_gflops * 1e9 / result["flops"]}
    said = f"float32 bound {bounds[False]:,.0f} samples/s"
    if any(name.endswith(BF16) for name in rates):
        said += f" | bfloat16 bound {bounds[True]:,.0f} samples/s"
    print(f"{result['title']} | {said}")
    print(
        f"{'loop':<14} | {'best':>8} | {'median':>8} | share of the bound (bfloat16's for _bf16): "
        "best round / the run's best product, median of rounds / the product around each "
        "| CPU cores busy (median)"
    )
    for name in rates:
        best, median = max(rates[name]), statistics.median(rates[name])
        bf16 = name.endswith(BF16)
        dtype = tf.bfloat16 if bf16 else tf.float32
        per_round = statistics.median(
            rate * result["flops"] / (around[dtype] * 1e9)
            for rate, around in zip(rates[name], result["nearby"][name], strict=True)
        )
        print(
            f"{name:<14} | {best:>8,.0f} | {median:>8,.0f} | {best / bounds[bf16]:>4.0%} "
            f"| {per_round:>4.0%} | {statistics.median(cores[name]):.2f}"
        )
    if torch_skipped:
        print(f"{'torch':<14} | skipped: torch not installed")
    for name in rates:
        ours = "kerasmlp" + (BF16 if name.endswith(BF16) else "")
        if name == ours or ours not in rates:
            continue
        theirs = rates[name]
        paired = statistics.median(a / b for a, b in zip(rates[ours], theirs, strict=True))
        print(
            f"{'ratio':<14} | {ours} / {name:<14} | {max(rates[ours]) / max(theirs):.2f} best "
            f"| {paired:.2f} median of rounds"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="random", help="'random' or a TFDS name (mnist)")
    parser.add_argument("--data-dir", default=None, help="default: data.data_dir, or a fresh one")
    parser.add_argument("--manual-dir", default=None, help="default: data.manual_dir")
    parser.add_argument("--examples", type=int, default=20_000, help="for --data random")
    parser.add_argument(
        "--config", default=os.path.join(os.path.dirname(__file__), "..", "configs", "mnist.yaml")
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--models", nargs="+", choices=sorted(PRESETS), default=list(PRESETS))
    parser.add_argument(
        "--loops",
        nargs="+",
        choices=LOOPS + EXTRA_LOOPS + BF16_LOOPS,
        default=list(LOOPS),
        metavar="LOOP",
        help=f"default: {' '.join(LOOPS)}; also {' '.join(EXTRA_LOOPS)}, and each loop in "
        f"mixed_bfloat16 with a {BF16} suffix ({' '.join(BF16_LOOPS)})",
    )
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop and round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds")
    parser.add_argument(
        "--matmul-repeats",
        type=int,
        default=5,
        help="matmul calls per measurement (before each round and after each loop)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads; default torch's own (the physical cores)",
    )
    args = parser.parse_args()
    for option in ("examples", "epochs", "repeats", "matmul_repeats"):
        if (value := getattr(args, option)) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1. Received: {value}")

    torch_wanted = any(n.startswith("torch") for n in args.loops)
    torch_info = torch_version(args.torch_threads) if torch_wanted else None
    loop_names = [n for n in args.loops if not n.startswith("torch") or torch_info is not None]
    if not loop_names:  # only torch loops asked for, and no torch: nothing to time
        parser.error(
            "--loops has no loop to run: torch is not installed (PyTorch is not a kerasmlp "
            f"dependency). Received: {' '.join(args.loops)}"
        )
    # Before any work: a mistake in --set is one line now, not after the data and the rounds.
    config = load_config(args.config, args.overrides)
    torch_loops = [n for n in loop_names if n.startswith("torch")]
    if torch_loops and (refusal := torch_loop_refusal(config)):  # --set applies to every model
        parser.error(f"--loops {' '.join(torch_loops)}: the torch loop {refusal}")
    if config.train.precision not in ("auto", "float32"):  # no loop reads it
        parser.error(
            f"train.precision: the loops train in float32, and in mixed_bfloat16 when named "
            f"with {BF16} (--loops kerasmlp{BF16} fit{BF16} ...). "
            f"Received: train.precision={config.train.precision}"
        )
    x, y, num_classes = load_arrays(args, config)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(
        f"machine  | {os.cpu_count()} CPUs, TensorFlow {tf.__version__} ({threads} threads), "
        f"Keras {keras.__version__}, torch {torch_info or 'not installed'}"
    )
    matmul = MatmulRate()
    data = (
        f"random, MNIST-shaped ({x.shape[1]} features, {num_classes} classes)"
        if args.data == "random"
        else args.data
    )
    print(
        f"data     | {len(x)} examples, {data}; {args.epochs} epochs per loop and round, "
        f"{args.repeats} rounds in rotating order"
    )
    results = [
        bench_model(preset, args, x, y, num_classes, loop_names, matmul) for preset in args.models
    ]
    f32, bf16 = matmul.best[tf.float32], matmul.best[tf.bfloat16]
    m, k, n = MATMUL_SHAPE
    print(
        f"matmul   | {m}x{k} @ {k}x{n}, tf.function, best of {matmul.calls} calls through "
        f"the run | float32 {f32:,.0f} GFLOP/s | bfloat16 {bf16:,.0f} GFLOP/s | the lowest "
        f"measurement's best: float32 {matmul.lowest[tf.float32]:,.0f}, bfloat16 "
        f"{matmul.lowest[tf.bfloat16]:,.0f}"
    )
    torch_skipped = torch_wanted and torch_info is None
    for result in results:
        print_summary(result, f32, bf16, torch_skipped=torch_skipped)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)

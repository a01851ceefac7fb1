"""`train.class_weight` as one weight per class id, as `model.fit(class_weight=...)` uses it.

'none' weighs every example 1; 'balanced' gives class c the weight
`n / (num_classes * n_c)` over the training split (scikit-learn's
`compute_class_weight("balanced")`), so every class carries the same total
weight; a mapping {class name: weight} weighs the classes it names and leaves
the others at 1. As in `model.fit`, the weights scale each training example's
loss (the mean over the batch divides by the batch size, not by the weights'
sum); validation and test losses and all metrics stay unweighted.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import numpy as np

from kerasmlp.config import ConfigError


def resolve_class_weight(
    setting: str | Mapping[str, float] | None,
    *,
    class_names: Sequence[str],
    labels: np.ndarray | None = None,
) -> np.ndarray | None:
    """The weight of each class id, shape (num_classes,) float32; None for 'none'.

    Args:
      setting: `train.class_weight`.
      class_names: the dataset's classes in id order; a mapping names them so.
      labels: the training split's class ids; needed for 'balanced'.

    Raises:
      ConfigError: a mapping naming a class the dataset does not have (with a
        "did you mean") or weighing every class 0, or 'balanced' with a class absent
        from the training split.
    """
    if setting is None or setting == "none":
        return None
    num_classes = len(class_names)
    if setting == "balanced":
        counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
        if (counts == 0).any():
            absent = [class_names[i] for i in np.flatnonzero(counts == 0)]
            raise ConfigError(
                f"train.class_weight balanced: class(es) {', '.join(absent)} have no training "
                "example; give the weights as a mapping instead"
            )
        return (counts.sum() / (num_classes * counts)).astype(np.float32)
    weights = np.ones(num_classes, np.float32)
    index = {name: i for i, name in enumerate(class_names)}
    for name, weight in setting.items():
        if name not in index:
            close = difflib.get_close_matches(name, list(index), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(class_names[:12]) + (", ..." if num_classes > 12 else "")
            raise ConfigError(
                f"train.class_weight names class {name!r}, which the dataset does not have."
                f"{hint} Classes: {shown}"
            )
        weights[index[name]] = weight
    if not weights.any():
        raise ConfigError(
            "train.class_weight gives every class weight 0: no example would count, and "
            f"nothing would train. Received: train.class_weight={dict(setting)}"
        )
    return weights

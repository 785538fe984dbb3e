"""Per-prediction explanations: the top-k feature contributions of TreeSHAP rows (pure maths).

The contributions come from the libraries' native TreeSHAP (see
:meth:`training.champion.PackagedModel.contributions`): one row per prediction, one column
per feature plus a last *bias* column (the model's expected output), all in the model's
margin units, so a row sums to the raw margin (log-odds for XGBoost and LightGBM, P(up) for
the random forest). An explanation keeps the ``k`` features with the largest absolute
contribution, largest first; ties keep the feature order.

>>> import numpy as np
>>> top_k(np.array([[0.1, -0.5, 0.2, 0.3]]), 2)  # the last column is the bias
(array([[1, 2]]), array([[-0.5,  0.2]]))
>>> explanations(np.array([[0.1, -0.5, 0.2, 0.3]]), ("a", "b", "c"), 2)
[(['b', 'c'], [-0.5, 0.2])]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Explanation = tuple[list[str], list[float]]


def top_k(contributions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature indices, contributions) of each row's ``k`` largest |contributions|.

    ``contributions`` is (rows, features + 1) with the bias last (left out). NaN counts as
    0 (never chosen before a real contribution). Both results are (rows, min(k, features)).
    """
    matrix = np.asarray(contributions, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise ValueError(f"contributions must be (rows, features + 1), got {matrix.shape}")
    features = matrix[:, :-1]
    width = min(max(int(k), 0), features.shape[1])
    magnitude = np.nan_to_num(np.abs(features), nan=0.0)
    order = np.argsort(-magnitude, axis=1, kind="stable")[:, :width]
    return order, np.take_along_axis(features, order, axis=1)


def explanations(contributions: np.ndarray, names: Sequence[str], k: int) -> list[Explanation]:
    """Each row's top-``k`` (feature names, contributions), for the prediction records."""
    order, values = top_k(contributions, k)
    if len(names) != np.asarray(contributions).shape[1] - 1:
        raise ValueError(f"{len(names)} names for {np.asarray(contributions).shape[1] - 1} columns")
    lookup = np.asarray(names, dtype=object)
    return list(zip(lookup[order].tolist(), values.tolist(), strict=True))


__all__ = ["Explanation", "explanations", "top_k"]

"""A scikit-learn random forest (median imputer + ``RandomForestClassifier``) as an XGBoost booster.

Why: scikit-learn's ``predict_proba`` pays a joblib dispatch and a Python loop over the trees
on every call — about 1-10 ms per micro-batch whatever its size (measured in
``benchmarks/bench_scoring.py``), too slow for the stream; and scikit-learn has no native
TreeSHAP (``shap`` cannot be installed beside ``lleaves``, see ``docs/models.md``). The same
forest written as an XGBoost model scores through ``Booster.inplace_predict`` and explains
through ``Booster.predict(pred_contribs=True)`` (XGBoost's own TreeSHAP), like an XGBoost
champion. Only the model is translated; no algorithm is re-implemented here.

The translation, one tree node at a time:

* **leaves**: P(up) of the leaf (class-1 share of ``tree_.value``) divided by the number of
  trees, so the booster's sum over its trees is the forest's mean probability; objective
  ``reg:squarederror`` with ``base_score`` 0, so the prediction *is* that sum (no link);
* **splits**: scikit-learn sends ``float32(x) <= threshold`` (a float64) left, XGBoost sends
  ``x < split_condition`` (a float32) left; both read the input as float32, so the condition
  is the next float32 above the largest float32 ``<= threshold``: the same rows go left;
* **missing values**: the pipeline's ``SimpleImputer`` puts the training median in place of
  NaN, so a node's default direction is where the median goes; features the imputer dropped
  (no observed value in training) are never split on;
* **cover**: each node's ``sum_hessian`` is scikit-learn's ``weighted_n_node_samples``, the
  weights TreeSHAP averages over (as ``shap.TreeExplainer`` does for a forest).

Equality is checked, not assumed: :func:`max_deviation` compares the booster with the
pipeline's ``predict_proba`` on probe rows built from the forest's own thresholds (at, just
above, NaN, the medians), and the caller keeps scikit-learn when it exceeds
:data:`TOLERANCE`. XGBoost adds float32 leaf values in float32, so a probability can differ
by a few float32 ulps (≤ 2e-7 measured for 300 trees).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tickcast.errors import ModelError

#: Largest |booster − predict_proba| accepted on the probe rows: float32 leaves summed in
#: float32 over up to ~1,000 trees stay well inside 1e-5 of the float64 mean.
TOLERANCE = 1e-5
_PROBE_ROWS = 512
_NO_PARENT = 2147483647


def forest_parts(pipeline: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """(``RandomForestClassifier``, kept input columns, their medians) of a fitted pipeline.

    The pipeline is :func:`training.models._build_random_forest`'s: an optional
    ``SimpleImputer`` then the forest. Raises :class:`ModelError` for anything else.
    """
    steps = [step for _, step in getattr(pipeline, "steps", [("rf", pipeline)])]
    forest = steps[-1]
    if type(forest).__name__ != "RandomForestClassifier" or len(steps) > 2:
        raise ModelError(f"not an (imputer +) random forest: {[type(s).__name__ for s in steps]}")
    if list(forest.classes_) != [0, 1]:
        raise ModelError(f"random forest classes must be [0, 1], got {list(forest.classes_)}")
    if len(steps) == 2:
        stats = np.asarray(steps[0].statistics_, dtype=np.float64)
        if getattr(steps[0], "keep_empty_features", False):
            kept = np.arange(stats.size)
        else:
            kept = np.flatnonzero(~np.isnan(stats))
        medians = stats[kept]
    else:
        kept = np.arange(forest.n_features_in_)
        medians = np.full(kept.size, np.nan)
    if kept.size != forest.n_features_in_:
        raise ModelError(f"imputer keeps {kept.size} columns, forest reads {forest.n_features_in_}")
    return forest, kept, medians


def _split_condition(threshold: np.ndarray) -> np.ndarray:
    """Float32 ``c`` with ``x < c`` ⟺ ``x <= threshold`` for every float32 ``x``."""
    t = np.asarray(threshold, dtype=np.float64)
    f = t.astype(np.float32)
    f = np.where(f.astype(np.float64) > t, np.nextafter(f, np.float32(-np.inf)), f)
    return np.nextafter(f, np.float32(np.inf)).astype(np.float32)


def _breadth_first(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Node ids in breadth-first order, XGBoost's own: children come in (left, right) pairs
    at odd/even ids. With scikit-learn's depth-first ids the booster predicted the same but
    its TreeSHAP contributions did not add up to the prediction (checked by a unit test)."""
    order, head = [0], 0
    while head < len(order):
        node = order[head]
        head += 1
        if left[node] >= 0:
            order += [int(left[node]), int(right[node])]
    return np.asarray(order, dtype=int)


def _tree_json(tree: Any, tree_id: int, n_trees: int, kept: np.ndarray, medians: np.ndarray,
               n_features: int) -> dict[str, Any]:  # fmt: skip
    t = tree.tree_
    order = _breadth_first(t.children_left, t.children_right)
    new_id = np.empty(order.size, dtype=int)
    new_id[order] = np.arange(order.size)
    is_leaf = t.children_left[order] < 0
    left = np.where(is_leaf, -1, new_id[t.children_left[order]])
    right = np.where(is_leaf, -1, new_id[t.children_right[order]])
    n = left.size
    value = np.asarray(t.value[order, 0, :], dtype=np.float64)
    p_up = value[:, 1] / np.maximum(value.sum(axis=1), 1e-300)
    leaf = (p_up / n_trees).astype(np.float32)
    local = np.where(is_leaf, 0, t.feature[order]).astype(int)
    threshold = np.where(is_leaf, 0.0, t.threshold[order])
    condition = np.where(is_leaf, leaf, _split_condition(threshold))
    median32 = medians[local].astype(np.float32)
    # NaN goes where the imputed median goes (a median of NaN: imputer-free, go left)
    default_left = np.where(np.isnan(median32), True, median32 < condition.astype(np.float32))
    parents = np.full(n, _NO_PARENT, dtype=np.int64)
    parents[left[~is_leaf]] = np.flatnonzero(~is_leaf)
    parents[right[~is_leaf]] = np.flatnonzero(~is_leaf)
    return {
        "base_weights": leaf.tolist(),
        "categories": [], "categories_nodes": [], "categories_segments": [],
        "categories_sizes": [],
        "default_left": [int(v) for v in np.where(is_leaf, 0, default_left)],
        "id": tree_id,
        "left_children": np.where(is_leaf, -1, left).tolist(),
        "loss_changes": [0.0] * n,
        "parents": parents.tolist(),
        "right_children": np.where(is_leaf, -1, right).tolist(),
        "split_conditions": condition.astype(np.float32).tolist(),
        "split_indices": np.where(is_leaf, 0, kept[local]).astype(int).tolist(),
        "split_type": [0] * n,
        "sum_hessian": np.asarray(t.weighted_n_node_samples[order], dtype=np.float64).tolist(),
        "tree_param": {"num_deleted": "0", "num_feature": str(n_features),
                       "num_nodes": str(n), "size_leaf_vector": "1"},
    }  # fmt: skip


def to_booster(pipeline: Any, n_features: int) -> Any:
    """An ``xgboost.Booster`` scoring ``pipeline``'s P(up) over ``n_features`` input columns."""
    import xgboost

    forest, kept, medians = forest_parts(pipeline)
    if kept.size and int(kept.max()) >= n_features:
        raise ModelError(f"forest reads column {int(kept.max())} of {n_features}")
    trees = list(forest.estimators_)
    model = {
        "learner": {
            "attributes": {}, "feature_names": [], "feature_types": [],
            "gradient_booster": {
                "model": {
                    "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
                    "gbtree_model_param": {"num_parallel_tree": str(len(trees)),
                                           "num_trees": str(len(trees))},
                    "iteration_indptr": [0, len(trees)],
                    "tree_info": [0] * len(trees),
                    "trees": [_tree_json(tree, i, len(trees), kept, medians, n_features)
                              for i, tree in enumerate(trees)],
                },
                "name": "gbtree",
            },
            "learner_model_param": {"base_score": "[0E0]", "boost_from_average": "0",
                                    "num_class": "0", "num_feature": str(n_features),
                                    "num_target": "1"},
            "objective": {"name": "reg:squarederror",
                          "reg_loss_param": {"scale_pos_weight": "1"}},
        },
        "version": [int(v) for v in xgboost.__version__.split(".")[:3]],
    }  # fmt: skip
    booster = xgboost.Booster()
    booster.load_model(bytearray(json.dumps(model).encode()))
    booster.set_param({"nthread": 1})
    return booster


def probe_rows(pipeline: Any, n_features: int, rows: int = _PROBE_ROWS) -> np.ndarray:
    """Rows reaching both sides of the forest's splits, their boundaries, medians and NaN."""
    forest, kept, medians = forest_parts(pipeline)
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    for tree in forest.estimators_:
        t = tree.tree_
        for node in np.flatnonzero(t.children_left >= 0):
            thresholds[int(kept[t.feature[node]])].append(float(t.threshold[node]))
    rng = np.random.default_rng(0)
    out = np.empty((rows, n_features))
    median_of = dict(zip(kept.tolist(), medians.tolist(), strict=True))
    for feature, values in enumerate(thresholds):
        t = np.asarray(values, dtype=np.float64)
        t32 = t.astype(np.float32).astype(np.float64)
        extra = [median_of.get(feature, 0.0), 0.0, np.nan]
        candidates = np.concatenate([t, t32, np.nextafter(t32, np.inf), extra])
        out[:, feature] = rng.choice(candidates, size=rows)
    out[0] = np.nan
    return out


def max_deviation(booster: Any, pipeline: Any, n_features: int) -> float:
    """Largest |booster − ``pipeline.predict_proba``| on :func:`probe_rows` (inf on NaN)."""
    probe = probe_rows(pipeline, n_features)
    reference = np.asarray(pipeline.predict_proba(probe), dtype=np.float64)[:, 1]
    got = np.asarray(booster.inplace_predict(probe), dtype=np.float64).ravel()
    diff = np.abs(got - reference)
    return float(np.inf) if np.isnan(diff).any() else float(diff.max(initial=0.0))

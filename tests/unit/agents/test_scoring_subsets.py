"""A model trained on a set the stream's set contains reads its own columns by name (#18)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from agents.scoring import ModelSet, Scorer
from tickcast.errors import ModelError
from training.champion import PackagedModel, ScoringModel
from training.models import make_model

NAMES = ("f0", "f1", "f2", "f3", "f4")
SMALL = "small-v1"
#: The stream's columns: the model's in another order, among others.
COLUMNS = ("g0", "f3", "f0", "g1", "f4", "f1", "f2", "g2")
STREAM = "union-v1"


def _scoring(names: tuple[str, ...], fsv: str, version: int, seed: int = 0) -> ScoringModel:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((400, len(names)))
    y = (X[:, 0] - X[:, -1] + 0.3 * rng.standard_normal(400) > 0).astype(int)
    model = make_model("xgboost", seed, {"n_estimators": 15})
    model.fit(pd.DataFrame(X, columns=list(names)), y)
    packaged = PackagedModel("xgboost", model, names, fsv, 1, 0.02)
    return ScoringModel.from_packaged(packaged, name="m", version=version, role="x")


def _rows(n: int) -> tuple[list[Any], pd.DataFrame]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.standard_normal((n, len(COLUMNS))), columns=list(COLUMNS))
    frame.iloc[::5, 2] = np.nan
    rows = [
        {"symbol": f"S{i % 3}", "ts": i, "feature_set_version": STREAM, "values": v}
        for i, v in enumerate(frame.to_numpy().tolist())
    ]
    return rows, frame


def test_a_contained_model_is_fed_its_own_columns_by_name() -> None:
    small = _scoring(NAMES, SMALL, 1)
    whole = _scoring(COLUMNS, STREAM, 2, seed=3)
    scorer = Scorer(ModelSet(small, [whole]), STREAM, columns=COLUMNS, compatible={SMALL})
    rows, frame = _rows(60)
    batch = scorer.score_batch(rows, 0)
    assert not batch.rejected
    assert not batch.failures
    got = {
        m: np.array([p["prob_up"] for p in batch.predictions if p["model_version"] == m])
        for m in ("1", "2")
    }
    # reference: pandas picks the columns by name, the model's own predict_proba scores them
    np.testing.assert_array_equal(got["1"], small.predict_proba(frame[list(NAMES)].to_numpy()))
    np.testing.assert_array_equal(got["2"], whole.predict_proba(frame.to_numpy()))
    assert {p["feature_set_version"] for p in batch.predictions if p["model_version"] == "1"} == {
        SMALL
    }


def test_a_model_of_a_set_the_stream_does_not_contain_is_refused_with_the_reason() -> None:
    other = _scoring(NAMES, "other-v9", 1)
    scorer = Scorer(ModelSet(), STREAM, columns=COLUMNS, compatible={SMALL})
    refusals = scorer.swap(ModelSet(other, []))
    assert len(refusals) == 1
    assert "'other-v9'" in refusals[0]
    assert "TICKCAST_FEATURE_SET" in refusals[0]
    with pytest.raises(ModelError, match="other-v9"):
        Scorer(ModelSet(other, []), STREAM, columns=COLUMNS, compatible={SMALL})


def test_a_compatible_model_naming_a_column_the_stream_lacks_is_refused() -> None:
    lacking = _scoring(("f0", "f1", "h9"), SMALL, 1)
    scorer = Scorer(ModelSet(), STREAM, columns=COLUMNS, compatible={SMALL})
    refusals = scorer.swap(ModelSet(lacking, []))
    assert refusals
    assert "['h9']" in refusals[0]
    assert scorer.model_set.champion is None  # the previous (empty) set is kept


def test_without_the_stream_columns_only_the_identical_version_scores() -> None:
    small = _scoring(NAMES, SMALL, 1)
    assert Scorer(ModelSet(), STREAM).swap(ModelSet(small, []))  # refused, as before


def test_rows_of_the_wrong_width_are_rejected_not_sliced() -> None:
    scorer = Scorer(ModelSet(_scoring(NAMES, SMALL, 1), []), STREAM, columns=COLUMNS,
                    compatible={SMALL})  # fmt: skip
    rows, _ = _rows(3)
    rows[1] = {**rows[1], "values": rows[1]["values"][:5]}
    batch = scorer.score_batch(rows, 0)
    assert [reason for _, reason in batch.rejected] == ["wrong_width"]
    assert len(batch.predictions) == 2

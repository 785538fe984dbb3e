"""The pure scorer: batch predictions equal the models' own, one call per model per batch."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agents.scoring import (
    CHALLENGER,
    CHAMPION,
    ModelSet,
    Scorer,
    budgeted_rows,
    latest_champion,
)
from tickcast.errors import ModelError
from training.champion import PackagedModel, ScoringModel, return_scale_of
from training.models import make_model

NAMES = tuple(f"f{i}" for i in range(5))
FSV = "fs-v1"
PREDICTION_FIELDS = {
    "symbol", "ts", "horizon", "prob_up", "expected_return", "model_name", "model_version",
    "role", "feature_set_version", "scoring_latency_ms", "correlation_id", "produced_at",
}  # fmt: skip


class CountingPredictor:
    """Wraps a predictor and records every call's row count."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.calls.append(X.shape[0])
        return self.inner.predict_proba(X)


def _train(kind: str, seed: int = 0) -> PackagedModel:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((500, len(NAMES)))
    X[:40, 1:] = np.nan  # warm-up rows in training, as in tickcast train
    y = (X[:, 0] + 0.3 * rng.standard_normal(500) > 0).astype(int)
    model = make_model(kind, seed, {"n_estimators": 20})
    model.fit(pd.DataFrame(X, columns=list(NAMES)), y)
    return PackagedModel(kind, model, NAMES, FSV, 1, 0.02)


XGB = _train("xgboost")
LGBM = _train("lightgbm")


def _scoring(packaged: PackagedModel, version: int, fsv: str = FSV) -> ScoringModel:
    spy = CountingPredictor(packaged)
    model = ScoringModel.from_packaged(packaged, name="m", version=version, role="x", predictor=spy)
    if fsv != FSV:
        model = ScoringModel(**{**model.__dict__, "feature_set_version": fsv})
    return model


def _rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(NAMES)))
    X[::7, 2] = np.nan  # warm-up values are scored, not dropped
    X[3, 4] = np.inf
    return [
        {
            "symbol": f"S{i % 4}",
            "ts": 1_000 + i,
            "feature_set_version": FSV,
            "values": X[i].tolist(),
            "correlation_id": f"cid-{i}",
        }
        for i in range(n)
    ]


def test_scores_equal_direct_predict_proba_with_one_call_per_model() -> None:
    champ, chall = _scoring(XGB, 1), _scoring(LGBM, 2)
    scorer = Scorer(ModelSet(champ, [chall]), FSV)
    rows = _rows(250)
    preds = scorer.score(rows, now_ms=42)

    assert champ.predictor.calls == [250]  # type: ignore[attr-defined]
    assert chall.predictor.calls == [250]  # type: ignore[attr-defined]
    assert len(preds) == 500
    assert all(set(p) == PREDICTION_FIELDS for p in preds)
    frame = pd.DataFrame([r["values"] for r in rows], columns=list(NAMES))
    frame = frame.replace([np.inf, -np.inf], np.nan)
    for role, packaged, version in ((CHAMPION, XGB, "1"), (CHALLENGER, LGBM, "2")):
        mine = [p for p in preds if p["role"] == role]
        assert [p["model_version"] for p in mine] == [version] * 250
        direct = packaged.model.predict_proba(frame)  # the training-time sklearn path
        np.testing.assert_allclose([p["prob_up"] for p in mine], direct, rtol=1e-6, atol=1e-7)
        expected = (2 * np.asarray([p["prob_up"] for p in mine]) - 1) * 0.02
        np.testing.assert_allclose([p["expected_return"] for p in mine], expected)
        assert [p["correlation_id"] for p in mine] == [r["correlation_id"] for r in rows]
        assert [(p["symbol"], p["ts"]) for p in mine] == [(r["symbol"], r["ts"]) for r in rows]
    assert all(p["produced_at"] == 42 and p["scoring_latency_ms"] >= 0 for p in preds)
    assert all(p["horizon"] == 1 and p["feature_set_version"] == FSV for p in preds)

    scorer.score(_rows(30, seed=2), now_ms=43)  # a second batch: a second call each
    assert champ.predictor.calls == [250, 30]  # type: ignore[attr-defined]


def test_mismatched_feature_set_is_refused_and_old_set_kept() -> None:
    good = ModelSet(_scoring(XGB, 1), [])
    scorer = Scorer(good, FSV)
    bad = ModelSet(_scoring(LGBM, 2), [_scoring(XGB, 3, fsv="other")])
    refusals = scorer.swap(bad)
    assert len(refusals) == 1
    assert "other" in refusals[0]
    assert scorer.model_set is good
    assert {p["model_version"] for p in scorer.score(_rows(5), 0)} == {"1"}
    with pytest.raises(ModelError):
        Scorer(ModelSet(_scoring(XGB, 1, fsv="other"), []), FSV)
    assert scorer.swap(ModelSet(_scoring(LGBM, 2), [])) == []
    assert {p["model_version"] for p in scorer.score(_rows(5), 0)} == {"2"}


def test_bad_rows_are_rejected_without_crashing_the_batch() -> None:
    scorer = Scorer(ModelSet(_scoring(XGB, 1), []), FSV)
    rows = _rows(4)
    rows[0] = {**rows[0], "feature_set_version": "old"}
    rows[1] = {**rows[1], "values": [1.0, 2.0]}
    rows[2] = {**rows[2], "values": ["x"] * len(NAMES)}
    batch = scorer.score_batch(rows, 0)
    assert [reason for _, reason in batch.rejected] == [
        "feature_set_mismatch",
        "wrong_width",
        "non_numeric",
    ]
    assert [p["ts"] for p in batch.predictions] == [rows[3]["ts"]]
    assert Scorer(ModelSet(), FSV).score_batch(rows, 0).rejected[0][1] == "no_model"
    assert scorer.score([], 0) == []


def test_a_failing_challenger_does_not_silence_the_champion() -> None:
    class Broken:
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            raise RuntimeError("boom")

    broken = ScoringModel.from_packaged(LGBM, name="m", version=9, role="x", predictor=Broken())
    scorer = Scorer(ModelSet(_scoring(XGB, 1), [broken]), FSV)
    batch = scorer.score_batch(_rows(6), 0)
    assert len(batch.predictions) == 6
    assert batch.failures[0][0] == "m:9"


def test_latest_champion_per_symbol() -> None:
    scorer = Scorer(ModelSet(_scoring(XGB, 1), [_scoring(LGBM, 2)]), FSV)
    preds = scorer.score(_rows(12), 0)
    latest = latest_champion(preds)
    assert set(latest) == {"S0", "S1", "S2", "S3"}
    assert latest["S0"]["ts"] == 1_008
    assert latest["S3"]["ts"] == 1_011
    assert all(p["role"] == CHAMPION for p in latest.values())


def test_return_scale_is_mean_absolute_log_return() -> None:
    returns = np.array([0.02, -0.01, 0.0, np.nan])
    assert return_scale_of(returns) == pytest.approx(np.mean(np.abs(np.log1p(returns[:3]))))


@pytest.mark.parametrize("champion", [XGB, LGBM], ids=["xgboost", "lightgbm"])
def test_the_champion_carries_its_top_k_contributions_and_challengers_none(
    champion: PackagedModel,
) -> None:
    champ = ScoringModel.from_packaged(champion, name="m", version=1, role="x")
    chall = ScoringModel.from_packaged(XGB, name="m", version=2, role="x")
    scorer = Scorer(ModelSet(champ, [chall]), FSV, explain_top_k=3)
    rows = _rows(40)
    batch = scorer.score_batch(rows, 0)
    assert batch.failures == []
    matrix = np.array([r["values"] for r in rows], dtype=float)
    matrix[np.isinf(matrix)] = np.nan
    contribs = champion.contributions(matrix)
    assert contribs is not None
    for pred, row in zip(batch.predictions[:40], contribs, strict=True):
        assert pred["role"] == CHAMPION
        names, values = pred["explanation_features"], pred["explanation_contributions"]
        assert len(names) == 3
        assert len(values) == 3
        assert values == [row[NAMES.index(n)] for n in names]
        assert [abs(v) for v in values] == sorted((abs(v) for v in values), reverse=True)
        assert min(abs(v) for v in values) >= np.sort(np.abs(row[:-1]))[-3]
    assert all("explanation_features" not in p for p in batch.predictions[40:])


def test_explanations_off_or_failing_leave_the_predictions_unexplained() -> None:
    champ = ScoringModel.from_packaged(XGB, name="m", version=1, role="x")
    off = Scorer(ModelSet(champ, []), FSV).score_batch(_rows(5), 0)
    assert all(set(p) == PREDICTION_FIELDS for p in off.predictions)

    class NoShap:
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return XGB.predict_proba(X)

        def contributions(self, X: np.ndarray) -> np.ndarray:
            raise RuntimeError("shap broke")

    broken = ScoringModel.from_packaged(XGB, name="m", version=1, role="x", predictor=NoShap())
    batch = Scorer(ModelSet(broken, []), FSV, explain_top_k=5).score_batch(_rows(5), 0)
    assert len(batch.predictions) == 5
    assert all(set(p) == PREDICTION_FIELDS for p in batch.predictions)
    assert batch.failures == [("m:1:explain", "RuntimeError('shap broke')")]


def test_budgeted_rows_take_each_symbols_newest_row_first() -> None:
    rng = np.random.default_rng(3)
    symbols = [f"S{v}" for v in rng.integers(0, 5, size=60)]
    newest = {s: i for i, s in enumerate(symbols)}  # the last index of each symbol
    by_recency = sorted(newest.values(), reverse=True)
    rest = sorted(set(range(60)) - set(newest.values()), reverse=True)
    for n in (0, 1, 3, len(newest), len(newest) + 4, 60, 99):
        assert budgeted_rows(symbols, n) == sorted((by_recency + rest)[:n])


def test_an_explanation_budget_explains_the_newest_rows_within_the_scoring_time() -> None:
    class SlowShap:
        """Scores in about 5 ms a batch; explains at about 2 ms a row."""

        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            time.sleep(0.005)
            return XGB.predict_proba(X)

        def contributions(self, X: np.ndarray) -> np.ndarray | None:
            time.sleep(0.002 * len(X))
            return XGB.contributions(X)

    champ = ScoringModel.from_packaged(XGB, name="m", version=1, role="x", predictor=SlowShap())
    scorer = Scorer(ModelSet(champ, []), FSV, 3, explain_budget=1.0)
    rows = _rows(40)
    symbols = [r["symbol"] for r in rows]
    first = scorer.score_batch(rows, 0).predictions  # no cost known yet: one row, the newest
    assert [i for i, p in enumerate(first) if "explanation_features" in p] == [39]
    second = scorer.score_batch(rows, 0).predictions
    explained = [i for i, p in enumerate(second) if "explanation_features" in p]
    assert 1 <= len(explained) < len(rows)  # ~5 ms of scoring buys ~2 rows of 2 ms
    assert explained == budgeted_rows(symbols, len(explained))
    assert all(len(second[i]["explanation_features"] or []) == 3 for i in explained)

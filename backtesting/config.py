"""A backtest's strategy configuration: which models, which strategies, what trading costs.

Loaded from YAML or JSON (:meth:`BacktestConfig.from_file`) or built in code::

    models: ["xgb-daily:7", "xgb-daily:8"]   # name:version, or a bare name for every version
    signal: prob_up                           # or expected_return (sign, top/bottom-k and IC)
    strategies:
      - {kind: sign}
      - {kind: threshold, p_hi: 0.55, p_lo: 0.45}
      - {kind: top_bottom_k, k: 5}
    cost_bps: 5
    slippage_bps: 2
    max_position: 0.1
    max_gross: 1.0
    periods_per_year: 252

>>> cfg = BacktestConfig.model_validate({"models": ["m:3"], "strategies": [{"kind": "sign"}]})
>>> cfg.models[0].name, cfg.models[0].version, cfg.strategies[0].label
('m', '3', 'sign')
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tickcast.errors import ConfigError

Signal = Literal["prob_up", "expected_return"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SignStrategy(_Frozen):
    """Long when the signal is above its centre (0.5 for ``prob_up``, 0 otherwise), short below.

    Each name weighs ``±1 / n_t`` (``n_t`` names with a prediction at ``t``), so gross ≤ 1.
    """

    kind: Literal["sign"] = "sign"
    name: str | None = Field(default=None, description="Label in the report; derived when omitted.")
    long_only: bool = Field(default=False, description="Flat instead of short below the centre.")

    @property
    def label(self) -> str:
        """The strategy's name in the report."""
        return self.name or ("long_on_sign" if self.long_only else "sign")


class ThresholdStrategy(_Frozen):
    """Long when ``prob_up > p_hi``, short when ``prob_up < p_lo``, flat in between."""

    kind: Literal["threshold"] = "threshold"
    name: str | None = None
    p_hi: float = Field(default=0.55, ge=0.0, le=1.0)
    p_lo: float = Field(default=0.45, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdStrategy:
        if self.p_lo > self.p_hi:
            raise ValueError(f"p_lo {self.p_lo} must not exceed p_hi {self.p_hi}")
        return self

    @property
    def label(self) -> str:
        """The strategy's name in the report."""
        return self.name or f"threshold_{self.p_hi:g}_{self.p_lo:g}"


class TopBottomKStrategy(_Frozen):
    """Cross-sectional per timestamp: long the ``k`` highest signals, short the ``k`` lowest."""

    kind: Literal["top_bottom_k"] = "top_bottom_k"
    name: str | None = None
    k: int = Field(default=5, ge=1)
    long_only: bool = False

    @property
    def label(self) -> str:
        """The strategy's name in the report."""
        return self.name or (f"top{self.k}" if self.long_only else f"top{self.k}_bottom{self.k}")


StrategySpec = Annotated[
    SignStrategy | ThresholdStrategy | TopBottomKStrategy, Field(discriminator="kind")
]


def _default_strategies() -> list[StrategySpec]:
    return [SignStrategy(kind="sign", name=None, long_only=False)]


class ModelRef(_Frozen):
    """One model version to evaluate (``version=None``: every version of ``name``)."""

    name: str = Field(min_length=1)
    version: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            name, _, version = value.partition(":")
            return {"name": name, "version": version or None}
        if isinstance(value, dict) and isinstance(value.get("version"), int):
            return {**value, "version": str(value["version"])}
        return value

    def matches(self, name: str, version: str) -> bool:
        """Whether a prediction's ``(model_name, model_version)`` is selected by this ref."""
        return name == self.name and (self.version is None or version == self.version)


class BacktestConfig(_Frozen):
    """Everything :func:`backtesting.evaluate.evaluate` needs besides predictions and bars."""

    models: list[ModelRef] = Field(
        default_factory=list, description="Model versions to evaluate; empty means all present."
    )
    strategies: list[StrategySpec] = Field(default_factory=_default_strategies, min_length=1)
    signal: Signal = Field(
        default="prob_up", description="Score for sign, top/bottom-k and the IC."
    )
    cost_bps: float = Field(
        default=0.0, ge=0.0, description="Commission per unit of turnover, bps."
    )
    slippage_bps: float = Field(
        default=0.0, ge=0.0, description="Slippage per unit of turnover, bps."
    )
    max_position: float | None = Field(
        default=None, gt=0.0, description="Largest |weight| per symbol."
    )
    max_gross: float | None = Field(default=None, gt=0.0, description="Largest sum of |weights|.")
    periods_per_year: float = Field(
        default=252.0, gt=0.0, description="Bars per year (annualising)."
    )
    rolling_window: int = Field(default=63, ge=2, description="Bars in the rolling Sharpe window.")
    baselines: bool = Field(
        default=True, description="Also run always-up and previous-return sign."
    )
    start: datetime | None = Field(
        default=None, description="Keep predictions with ts >= start (UTC)."
    )
    end: datetime | None = Field(default=None, description="Keep predictions with ts < end (UTC).")

    @model_validator(mode="after")
    def _unique_labels(self) -> BacktestConfig:
        labels = [s.label for s in self.strategies]
        if len(set(labels)) != len(labels):
            raise ValueError(f"strategy names must be unique, got {labels}")
        return self

    @classmethod
    def from_mapping(cls, data: Any) -> BacktestConfig:
        """Validate a mapping, turning errors into one readable :class:`ConfigError`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"invalid backtest configuration: {problems}") from None

    @classmethod
    def from_file(cls, path: Path | str) -> BacktestConfig:
        """Load ``.yaml``/``.yml`` or ``.json`` (anything else is parsed as YAML)."""
        import yaml

        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        except OSError as exc:
            raise ConfigError(f"cannot read backtest configuration {p}: {exc}") from None
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p} is not valid JSON/YAML: {exc}") from None
        return cls.from_mapping(data if data is not None else {})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (strategies carry their report labels)."""
        out = self.model_dump(mode="json")
        for spec, dumped in zip(self.strategies, out["strategies"], strict=True):
            dumped["label"] = spec.label
        return out

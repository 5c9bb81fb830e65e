"""The outcome loop's settings (``config/outcomes.yaml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from qz_outbound import config


class Flag(config.StrictModel):
    min_contacts: int = Field(ge=1)
    min_conversion_rate: float = Field(ge=0, le=1)


class RoiNegative(config.StrictModel):
    """Pause on ROI negative with confidence (``mkt_campaign_economics``; docs/learning.md)."""
    enabled: bool = False
    min_contacted: int = Field(default=1000, ge=1)
    # pause when the ROI's upper bound (incremental revenue at arpu_ci_high, minus cost, over cost)
    # is below this; 0: the whole interval of the ROI lies below zero
    max_roi_high: float = Field(default=0.0, le=0)


class AutoPause(config.StrictModel):
    enabled: bool = False
    min_contacts: int = Field(default=1000, ge=1)
    roi_negative: RoiNegative = RoiNegative()


class OutcomeConfig(config.StrictModel):
    attribution_days: int = Field(ge=1, le=90)
    order_lookback_days: int = Field(ge=1, le=365)
    report_days: int = Field(ge=1, le=365)
    confidence: float = Field(gt=0.5, lt=1)
    bill_months: int = Field(default=3, ge=1, le=12)
    trend_cycles: int = Field(default=14, ge=2, le=90)
    flag: Flag
    auto_pause: AutoPause = AutoPause()


def load_outcome_config(path: Path | None = None) -> OutcomeConfig:
    return config.load(OutcomeConfig, path or config.config_path("outcomes.yaml"))

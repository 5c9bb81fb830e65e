"""``config/agent_channel.yaml``, checked by the one config loader."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, model_validator

from qz_outbound import config


class Recommendation(config.StrictModel):
    offer_validity_hours: float = Field(gt=0, le=72)
    late_arrival_minutes: int = Field(ge=0, le=24 * 60)
    first_read_hours: float = Field(gt=0, le=24 * 14)
    batch_size: int = Field(ge=1, le=50_000)


class Commission(config.StrictModel):
    window_days: int = Field(default=7, ge=1, le=90)
    per_product: dict[str, Decimal] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_negative(self) -> "Commission":
        bad = sorted(p for p, v in self.per_product.items() if v < 0)
        if bad:
            raise ValueError(f"commission must not be negative: {bad}")
        return self


class FullMarks(config.StrictModel):
    customers_served: float = Field(gt=0)
    floor_area_m2: float = Field(gt=0)
    conversions: float = Field(gt=0)


class Weights(config.StrictModel):
    customers_served: float = Field(ge=0, le=1)
    floor_area_m2: float = Field(ge=0, le=1)
    outlet_type: float = Field(ge=0, le=1)
    conversions: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sum_one(self) -> "Weights":
        total = self.customers_served + self.floor_area_m2 + self.outlet_type + self.conversions
        if abs(total - 1) > 1e-9:
            raise ValueError(f"weights must add up to 1 (they add up to {total:g})")
        return self


class CutOffs(config.StrictModel):
    A: float = Field(ge=0, le=100)
    B: float = Field(ge=0, le=100)
    C: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> "CutOffs":
        if not self.A > self.B > self.C:
            raise ValueError("cut-offs must fall from A to C (A > B > C)")
        return self


OUTLET_TYPES = ("village", "grocery", "franchise", "cooperative_hall", "specialty_store")


class Grading(config.StrictModel):
    full_marks: FullMarks
    outlet_type_score: dict[str, float]
    weights: Weights
    cut_offs: CutOffs

    @model_validator(mode="after")
    def _types(self) -> "Grading":
        missing = sorted(set(OUTLET_TYPES) - set(self.outlet_type_score))
        unknown = sorted(set(self.outlet_type_score) - set(OUTLET_TYPES))
        if missing or unknown:
            raise ValueError(f"outlet_type_score needs exactly {list(OUTLET_TYPES)} (missing {missing}, unknown {unknown})")
        return self


class AgentChannelConfig(config.StrictModel):
    recommendation: Recommendation
    commission: Commission
    grading: Grading


def load_agent_config(path: Path | None = None) -> AgentChannelConfig:
    return config.load(AgentChannelConfig, path or config.config_path("agent_channel.yaml"))

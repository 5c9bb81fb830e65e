"""``config/agent_channel.yaml``, checked by the one config loader."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field, model_validator

from qz_outbound import config


GRADES = ("A", "B", "C", "D")
MAX_PRODUCTS = 5          # more would not fit the shop owner's SMS (sms.yaml max_parts)


class GradeSteer(config.StrictModel):
    """What a shop of one outlet grade is given: at most ``max_products`` products, and only the
    listed ``campaigns`` (absent: every agent campaign)."""
    max_products: int | None = Field(default=None, ge=1, le=MAX_PRODUCTS)
    campaigns: list[str] | None = Field(default=None, min_length=1)


class GradeSteering(config.StrictModel):
    A: GradeSteer | None = None
    B: GradeSteer | None = None
    C: GradeSteer | None = None
    D: GradeSteer | None = None

    def items(self) -> list[tuple[str, GradeSteer]]:
        return [(g, getattr(self, g)) for g in GRADES if getattr(self, g) is not None]


class Recommendation(config.StrictModel):
    offer_validity_hours: float = Field(gt=0, le=72)
    late_arrival_minutes: int = Field(ge=0, le=24 * 60)
    first_read_hours: float = Field(gt=0, le=24 * 14)
    batch_size: int = Field(ge=1, le=50_000)
    # the products the shop owner's SMS lists at most (best expected value first; the customer's SMS
    # carries the first)
    max_products: int = Field(default=3, ge=1, le=MAX_PRODUCTS)
    # the template of the shop owner's SMS when it lists more than one product
    shop_list_template: str = "agent-shop-list"
    # per outlet grade (mkt_agent_grade, the shop's latest graded month): fewer products, or only some
    # campaigns; an ungraded shop, or a grade not listed, gets max_products of every agent campaign
    grade_steering: GradeSteering = Field(default_factory=GradeSteering)


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


def load_agent_config(path: Path | None = None, library=None) -> AgentChannelConfig:
    """config/agent_channel.yaml, checked; the grade steering's campaign codes must be agent campaigns
    of the library (``file:line: field: message`` for each mistake)."""
    path = Path(path or config.config_path("agent_channel.yaml"))
    if not path.exists():
        raise config.ConfigError([(str(path), None, "", "file not found")])
    data, index = config.parse_yaml(path)
    cfg = config.validate(AgentChannelConfig, data, path, index)
    from qz_outbound import TEMPLATE_DIR

    if not (TEMPLATE_DIR / "sms" / f"{cfg.recommendation.shop_list_template}.j2").exists():
        raise config.ConfigError([(str(path), config._nearest_line(index, ("recommendation", "shop_list_template")),
                                   "recommendation.shop_list_template",
                                   f"no template include/templates/sms/{cfg.recommendation.shop_list_template}.j2")])
    steering = cfg.recommendation.grade_steering.items()
    if any(s.campaigns for _, s in steering):
        if library is None:
            from qz_outbound import campaigns

            library = campaigns.load_library()
        agent_codes = {c.code for c in library if "agent" in c.channels}
        problems = []
        for grade, steer in steering:
            for i, code in enumerate(steer.campaigns or []):
                if code not in agent_codes:
                    loc = ("recommendation", "grade_steering", grade, "campaigns", i)
                    problems.append((str(path), config._nearest_line(index, loc),
                                     f"recommendation.grade_steering.{grade}.campaigns.{i}",
                                     f"{code!r} is not an agent-channel campaign of config/campaigns/"))
        if problems:
            raise config.ConfigError(problems)
    return cfg

"""The campaign library (营销活动产品库): one YAML file per campaign, edited by HQ.

Each file is checked against :class:`Campaign` when a cycle starts; a mistake
fails the cycle before any contact, naming the file, the line and the field.
The code follows the plan's coding (domain.md): type, benefit form,
participation requirement and reward digits, then a serial number, e.g.
``1114-007``; the file is named after the code. A campaign also declares its
benefit form, requirement and reward in words (``benefit``, ``requirement``,
``reward``), and a code whose digits say otherwise is refused, as is a product
code that two campaigns share (their conversions and commission would mix).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from qz_outbound import SQL_DIR, TEMPLATE_DIR, config

CODE = re.compile(r"^([123])([1-4])([1-5])([1-5])-(\d{3})$")
TYPES = {"1": "uplift", "2": "retention", "3": "care"}
BENEFITS = {"1": "gift", "2": "discount", "3": "lottery", "4": "trial"}
REQUIREMENTS = {"1": "prepay", "2": "min_spend", "3": "package", "4": "stay", "5": "subscribe"}
REWARDS = {"1": "credit", "2": "handset", "3": "voice", "4": "data", "5": "shopping_card"}
TYPE_NAMES = {"uplift": "提升型", "retention": "保有型", "care": "维系型"}
# position in the code (0-based digit), meaning, digit -> value: how each declared field is checked
CODE_DIGITS = {"type": (0, "type", TYPES), "benefit": (1, "benefit form", BENEFITS),
               "requirement": (2, "participation requirement", REQUIREMENTS), "reward": (3, "reward", REWARDS)}
TERMINAL_TYPES = ("5G", "4G", "feature", "unknown")
STABILITY_TYPES = ("0", "1", "21", "22", "23", "3", "41", "42", "43", "5")
Channel = Literal["sms", "call", "agent"]


class TierRange(config.StrictModel):
    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "TierRange":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class BundleExpiry(config.StrictModel):
    """Customers whose bundle of one of these types ends within the next N days (contract renewal)."""

    types: list[Literal["prepay", "min_spend", "package", "contract", "vpn"]]
    within_days: int = Field(gt=0, le=366)


class Target(config.StrictModel):
    """Who the campaign wants. Every listed condition must hold; an omitted one does not restrict."""

    stability_types: list[str] = Field(min_length=1)
    spend_tier: TierRange | None = None
    voice_tier: TierRange | None = None
    data_tier: TierRange | None = None
    tenure_tier: TierRange | None = None
    market_segments: list[Literal["migrant", "enterprise", "campus", "none"]] | None = None
    bundle: Literal["any", "bundled", "unbundled", "hard", "soft"] = "any"
    bundle_expiring: BundleExpiry | None = None
    holds_any_of: list[str] | None = None     # must already hold one of these products
    anniversary_month: bool = False           # customers whose network anniversary (入网周年) month is D's month
    terminal_types: list[Literal[TERMINAL_TYPES]] | None = Field(default=None, min_length=1)  # subscriber.terminal_type
    sms_count: TierRange | None = None        # SMS sent in M0 (the plan's dimension 40), a count, not a tier
    sql: str | None = None                    # include/sql/campaign_rules/<file>.sql: extra rule (msisdn list)
    # customer tags (config/tags.yaml codes, docs/learning.md): holds at least one of / none of these
    tags_any: list[str] | None = Field(default=None, min_length=1)
    tags_none: list[str] | None = Field(default=None, min_length=1)

    @field_validator("stability_types")
    @classmethod
    def _known_types(cls, v: list[str]) -> list[str]:
        v = [str(t) for t in v]
        unknown = sorted(set(v) - set(STABILITY_TYPES))
        if unknown:
            raise ValueError(f"unknown stability type(s) {unknown}; known: {list(STABILITY_TYPES)}")
        return v

    @field_validator("sql")
    @classmethod
    def _sql_exists(cls, v: str | None) -> str | None:
        if v is not None and not (SQL_DIR / "campaign_rules" / v).is_file():
            raise ValueError(f"include/sql/campaign_rules/{v} does not exist")
        return v


class SmsVariant(config.StrictModel):
    template: str   # include/templates/sms/<template>.j2
    share: Decimal = Field(default=Decimal(1), gt=0)

    @field_validator("template")
    @classmethod
    def _template_exists(cls, v: str) -> str:
        if not (TEMPLATE_DIR / "sms" / f"{v}.j2").is_file():
            raise ValueError(f"include/templates/sms/{v}.j2 does not exist")
        return v


class Campaign(config.StrictModel):
    code: str
    name: str = Field(min_length=2)
    type: Literal["uplift", "retention", "care"]
    benefit: Literal["gift", "discount", "lottery", "trial"]                          # code digit 2
    requirement: Literal["prepay", "min_spend", "package", "stay", "subscribe"]       # code digit 3
    reward: Literal["credit", "handset", "voice", "data", "shopping_card"]            # code digit 4
    product_code: str = Field(min_length=1)
    offer: str = Field(min_length=2)            # the offer in words, for call lists and agents
    priority: int = Field(ge=1, le=999)         # 1 is best; ties go to the lower code
    valid_from: dt.date
    valid_to: dt.date
    target: Target
    channels: list[Channel] = Field(min_length=1)
    sms_variants: dict[str, SmsVariant] | None = Field(default=None, validate_default=True)  # A/B by label
    call_script: str | None = Field(default=None, validate_default=True)  # include/templates/call/<name>.j2
    agent_sms: str | None = Field(default=None, validate_default=True)    # include/templates/sms/<name>.j2
    # Agent channel (docs/agent-channel.md); all optional, so campaigns without it read as before.
    agent_pitch: str | None = Field(default=None, min_length=2, max_length=40)   # one line for the shop owner
    agent_customer_sms: str | None = Field(default=None, validate_default=True)  # the customer's SMS template
    agent_rules: Target | None = None     # whom the shop may be asked to pitch this to without a current offer
    personal_fields: list[str] | None = None   # 个性数据: per-customer fields an import must give (templates: personal.x)
    control_share: Decimal = Field(default=Decimal("0.05"), ge=0, lt=Decimal("0.5"))
    commission_yuan: Decimal = Field(default=Decimal(0), ge=0)
    cost_per_contact_yuan: Decimal | None = Field(default=None, ge=0)
    # what one conversion costs the operator (handset subsidy, discount, free data, gift): economics.md
    offer_cost_yuan: Decimal = Field(ge=0, allow_inf_nan=False)
    paused: bool = False
    # the care campaign that takes the uncovered: it wins only a customer no other campaign offers
    # anything this cycle, under the same contact rules and with its own control group
    fallback: bool = False
    # the learning loop (docs/learning.md): HQ keeps this campaign's fixed priority in every mode;
    # when fixed priorities give a customer this campaign, he gets it (no learned or random choice)
    pin_priority: bool = False

    @field_validator("code")
    @classmethod
    def _coded(cls, v: str) -> str:
        if not CODE.match(v):
            raise ValueError("must be 4 code digits and a 3-digit serial, e.g. 1114-007 "
                             "(type 1-3, benefit 1-4, requirement 1-5, reward 1-5)")
        return v

    @field_validator("type", "benefit", "requirement", "reward")
    @classmethod
    def _matches_code(cls, v: str, info: ValidationInfo) -> str:
        """Each digit of the code must say what the campaign declares (domain.md's coding)."""
        code = info.data.get("code") or ""
        if not CODE.match(code):
            return v
        pos, meaning, values = CODE_DIGITS[info.field_name]
        expected = next(k for k, name in values.items() if name == v)
        if code[pos] != expected:
            raise ValueError(
                f"{v!r} needs digit {pos + 1} ({meaning}) of the code to be {expected}, but code {code} has "
                f"{code[pos]} ({values[code[pos]]}): expected code {code[:pos]}{expected}{code[pos + 1:]}")
        return v

    @field_validator("valid_to")
    @classmethod
    def _after_start(cls, v: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("valid_from")
        if start and v < start:
            raise ValueError("is before valid_from")
        return v

    @field_validator("sms_variants")
    @classmethod
    def _sms_needs_variants(cls, v, info: ValidationInfo):
        if "sms" in (info.data.get("channels") or []) and not v:
            raise ValueError("channel sms needs at least one variant")
        return v

    @field_validator("call_script")
    @classmethod
    def _script(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "call" in (info.data.get("channels") or []) and not v:
            raise ValueError("channel call needs a call script")
        if v is not None and not (TEMPLATE_DIR / "call" / f"{v}.j2").is_file():
            raise ValueError(f"include/templates/call/{v}.j2 does not exist")
        return v

    @field_validator("agent_sms")
    @classmethod
    def _agent(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "agent" in (info.data.get("channels") or []) and not v:
            raise ValueError("channel agent needs an agent_sms template")
        if v is not None and not (TEMPLATE_DIR / "sms" / f"{v}.j2").is_file():
            raise ValueError(f"include/templates/sms/{v}.j2 does not exist")
        return v

    @field_validator("agent_customer_sms")
    @classmethod
    def _agent_customer(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "agent" in (info.data.get("channels") or []) and not v and not info.data.get("sms_variants"):
            raise ValueError("channel agent needs a customer SMS (agent_customer_sms or an sms variant)")
        if v is not None and not (TEMPLATE_DIR / "sms" / f"{v}.j2").is_file():
            raise ValueError(f"include/templates/sms/{v}.j2 does not exist")
        return v

    @field_validator("personal_fields")
    @classmethod
    def _personal(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            bad = [f for f in v if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", f)]
            if bad or len(set(v)) != len(v):
                raise ValueError(f"field names must be distinct lower_snake_case words: {bad or v}")
        return v

    @model_validator(mode="after")
    def _agent_needs_pitch(self) -> "Campaign":
        if "agent" in self.channels and not self.agent_pitch:
            raise ValueError("channel agent needs agent_pitch (the shop owner's one line)")
        return self

    @model_validator(mode="after")
    def _fallback_is_care(self) -> "Campaign":
        if self.fallback and (self.type != "care" or not {"sms", "call"} & set(self.channels)):
            raise ValueError("fallback: the campaign that takes the uncovered must be a care campaign "
                             "(type care) with an sms or call channel")
        return self

    @property
    def customer_agent_template(self) -> str | None:
        """The customer's SMS for an agent recommendation: its own, else the first SMS variant's."""
        if self.agent_customer_sms:
            return self.agent_customer_sms
        return self.sms_variants[self.variant_labels[0]].template if self.sms_variants else None

    @property
    def variant_labels(self) -> list[str]:
        return sorted(self.sms_variants) if self.sms_variants else []

    def active_on(self, day: dt.date) -> bool:
        return not self.paused and self.valid_from <= day <= self.valid_to


def code_fields(code: str) -> dict[str, str]:
    """What a well-formed code says: ``type``, ``benefit``, ``requirement`` and ``reward`` (for
    building a campaign whose declarations agree with its code, e.g. in tests)."""
    m = CODE.match(code)
    if not m:
        raise ValueError(f"not a campaign code: {code!r}")
    return {field: values[code[pos]] for field, (pos, _meaning, values) in CODE_DIGITS.items()}


def library_dir() -> Path:
    return config.config_path("campaigns")


def load_library(directory: Path | None = None) -> list[Campaign]:
    """Every campaign file, validated. All problems of all files are reported together."""
    directory = Path(directory or library_dir())
    problems: list[tuple[str, int | None, str, str]] = []
    campaigns: list[Campaign] = []
    lines: dict[str, tuple[str, int | None]] = {}   # code -> (file, line of product_code)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise config.ConfigError([(str(directory), None, "", "no campaign files (*.yaml)")])
    for path in files:
        try:
            data, index = config.parse_yaml(path)
            campaign = config.validate(Campaign, data, path, index)
        except config.ConfigError as err:
            problems += err.problems
            continue
        lines[campaign.code] = (str(path), index.get(("product_code",)))
        if path.stem != campaign.code:
            problems.append((str(path), index.get(("code",)), "code",
                             f"file name must be the campaign code ({campaign.code}.yaml)"))
            continue
        campaigns.append(campaign)
    codes = [c.code for c in campaigns]
    for dup in sorted({c for c in codes if codes.count(c) > 1}):
        problems.append((str(directory), None, "code", f"campaign {dup} defined twice"))
    problems += _shared_products(campaigns, lines)
    problems += _unknown_tags(campaigns, directory)
    if problems:
        raise config.ConfigError(problems)
    return sorted(campaigns, key=lambda c: (c.priority, c.code))


def _shared_products(campaigns: list[Campaign], lines: dict[str, tuple[str, int | None]]) \
        -> list[tuple[str, int | None, str, str]]:
    """Two campaigns with one product code: BOSS orders carry only the product, so conversions and
    commission could not be told apart. Each campaign file involved is named."""
    by_product: dict[str, list[str]] = {}
    for c in campaigns:
        by_product.setdefault(c.product_code, []).append(c.code)
    problems = []
    for product, codes in sorted(by_product.items()):
        if len(codes) > 1:
            for code in sorted(codes):
                others = ", ".join(o for o in sorted(codes) if o != code)
                file, line = lines[code]
                problems.append((file, line, "product_code",
                                 f"product {product} is also the product of campaign {others}: "
                                 "each offer needs its own product code"))
    return problems


def _unknown_tags(campaigns: list[Campaign], directory: Path) -> list[tuple[str, int | None, str, str]]:
    """A campaign's ``target.tags_any`` / ``tags_none`` name tags of config/tags.yaml (a typo would
    silently target nobody, or exclude nobody); the agent lane's ``agent_rules`` does not read tags
    (agent_decide.sql), so tags there are refused rather than ignored. tags.yaml's own mistakes are
    its loader's to report."""
    used = [(c, part, field) for c in campaigns for part in ("target", "agent_rules")
            for field in ("tags_any", "tags_none")
            if getattr(c, part) is not None and getattr(getattr(c, part), field)]
    if not used:
        return []
    from qz_outbound import tags

    try:
        known = tags.load_tags().codes()
    except config.ConfigError:
        known = None
    problems = []
    for c, part, field in used:
        path = directory / f"{c.code}.yaml"
        _data, index = config.parse_yaml(path)
        if part == "agent_rules":
            problems.append((str(path), index.get((part, field)), f"{part}.{field}",
                             "the agent lane does not target by customer tags; use target.tags_any / tags_none"))
            continue
        for i, code in enumerate(getattr(c.target, field)):
            line = index.get((part, field, i)) or index.get((part, field))
            if known is None:
                problems.append((str(path), line, f"{part}.{field}.{i}",
                                 f"tag {code!r}: config/tags.yaml cannot be read (see its own errors)"))
            elif code not in known:
                problems.append((str(path), line, f"{part}.{field}.{i}",
                                 f"unknown tag {code!r}; known (config/tags.yaml): {', '.join(sorted(known))}"))
    return problems

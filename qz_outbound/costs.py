"""What a contact costs the operator (economics.md "Cost"): ``contact_cost_yuan`` in ``config/channels.yaml``.

Read by the campaign economics (:mod:`qz_outbound.economics`) and by the budgets (the cost a
cycle commits). The offer's own cost is the campaign's ``offer_cost_yuan``; commission actually
paid comes from the agent ledger (``mkt_agent_commission``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field

from qz_outbound import config


class ContactCosts(config.StrictModel):
    """Yuan per unit of contact: an SMS part sent, a call dialled, an agent-shop SMS."""

    sms_part: float = Field(default=0.05, ge=0, allow_inf_nan=False)
    call_dialled: float = Field(default=1.50, ge=0, allow_inf_nan=False)
    agent_sms: float = Field(default=0.05, ge=0, allow_inf_nan=False)


class _ChannelsCosts(config.StrictModel):
    """``channels.yaml`` seen for its ``contact_cost_yuan`` only (the rest is targeting's)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    contact_cost_yuan: ContactCosts


def load_contact_costs(path: Path | None = None) -> ContactCosts:
    """``contact_cost_yuan`` of ``channels.yaml``; a mistake raises ConfigError as ``file:line: field: message``."""
    return config.load(_ChannelsCosts, path or config.config_path("channels.yaml")).contact_cost_yuan

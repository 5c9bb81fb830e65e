"""What a contact costs the operator (economics.md "Cost"), from ``config/channels.yaml``.

``contact_cost_yuan`` there gives yuan per SMS part sent, per call dialled and per agent-shop SMS.
(The ``economics`` branch owns this module; this is the same interface, names and values.)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from qz_outbound import config


class ContactCosts(config.StrictModel):
    sms_part: float = Field(ge=0)        # yuan per SMS part sent
    call_dialled: float = Field(ge=0)    # yuan per call dialled
    agent_sms: float = Field(ge=0)       # yuan per agent-shop SMS


def load_contact_costs(path: Path | None = None) -> ContactCosts:
    """``contact_cost_yuan`` of config/channels.yaml, checked (file, line, field on a mistake)."""
    path = Path(path or config.config_path("channels.yaml"))
    if not path.exists():
        raise config.ConfigError([(str(path), None, "", "file not found")])
    data, index = config.parse_yaml(path)
    block = (data or {}).get("contact_cost_yuan")
    if block is None:
        raise config.ConfigError([(str(path), None, "contact_cost_yuan", "missing")])
    shifted = {k[1:]: v for k, v in index.items() if k[:1] == ("contact_cost_yuan",)}
    try:
        return config.validate(ContactCosts, block, path, shifted)
    except config.ConfigError as exc:
        raise config.ConfigError([(f, line, f"contact_cost_yuan.{field}" if field else "contact_cost_yuan", msg)
                                  for f, line, field, msg in exc.problems]) from None

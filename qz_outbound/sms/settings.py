"""SMS settings: the texts and defaults of ``config/sms.yaml`` and the SMSC account.

:class:`SmsConfig` is what HQ edits. :class:`SmscSettings` is one SMSC bind:
the account (from the Airflow connection ``smsc`` in production, from the
development SMSC in tests) merged over the sender defaults of the config.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from qz_outbound import PROJECT_ROOT, config
from qz_outbound.config import StrictModel

# contact-policy.md "When": the widest window a configuration may choose.
EARLIEST = dt.time(8, 0)
LATEST = dt.time(20, 0)


class MessageConfig(StrictModel):
    signature: str = Field(min_length=3)
    opt_out_text: str = Field(min_length=2)
    max_parts: int = Field(5, ge=1, le=10)

    @model_validator(mode="after")
    def _signature_in_brackets(self):
        if not (self.signature.startswith("【") and self.signature.endswith("】")):
            raise ValueError("signature must be in 【】, e.g. 【泉州移动】")
        return self


class SendingHours(StrictModel):
    start: dt.time = EARLIEST
    end: dt.time = LATEST

    @model_validator(mode="after")
    def _inside_policy(self):
        if self.start < EARLIEST or self.end > LATEST or self.start >= self.end:
            raise ValueError("sending hours must lie within 08:00-20:00 Asia/Shanghai, start before end")
        return self


class RepliesConfig(StrictModel):
    extra_accept: list[str] = []
    extra_opt_out: list[str] = []


class SenderDefaults(StrictModel):
    """How to send on a bind: the ``sender`` section of ``config/sms.yaml``, and the extras of the
    ``smsc`` connection (:class:`SmscSettings` inherits these fields, so both obey the same bounds)."""

    rate: float = Field(100, gt=0, le=100_000)    # contracted messages per second (100000: the benchmark's "no limit")
    window: int = Field(50, ge=1, le=1000)
    bind_mode: Literal["transmitter", "transceiver"] = "transmitter"
    registered_delivery: int = Field(1, ge=0, le=31)
    # SMPP 3.4 5.2.5/5.2.6: TON 0-6, NPI 0-18 (values the protocol defines)
    source_addr_ton: int = Field(0, ge=0, le=6)
    source_addr_npi: int = Field(0, ge=0, le=18)
    dest_addr_ton: int = Field(0, ge=0, le=6)
    dest_addr_npi: int = Field(1, ge=0, le=18)
    enquire_link_interval: float = Field(30, gt=0, le=3600)
    response_timeout: float = Field(30, gt=0, le=600)
    reconnect_initial: float = Field(0.5, gt=0)
    reconnect_max: float = Field(30, gt=0)
    reconnect_give_up: float = Field(600, gt=0)
    throttle_max_attempts: int = Field(50, ge=1)
    rate_margin: float = Field(0.015, ge=0, lt=0.5)
    burst_seconds: float = Field(0.02, gt=0, le=1)
    state_dir: str = "var/sms"


class ReceiverConfig(StrictModel):
    bind_mode: Literal["receiver", "transceiver"] = "transceiver"
    batch_max: int = Field(500, ge=1)
    retry_unmatched_seconds: float = Field(1.0, gt=0)
    unmatched_give_up_hours: float = Field(72, gt=0)
    apply_workers: int = Field(2, ge=1, le=16)
    inbound_keep_days: int = Field(90, ge=1, le=3650)   # processed sms_inbound rows, then deleted

    @model_validator(mode="after")
    def _keep_longer_than_matching(self):
        if self.inbound_keep_days * 24 <= self.unmatched_give_up_hours:
            raise ValueError("inbound_keep_days must be longer than unmatched_give_up_hours "
                             "(a receipt still being matched is never deleted)")
        return self


class SmsConfig(StrictModel):
    message: MessageConfig
    sending_hours: SendingHours = SendingHours()
    replies: RepliesConfig = RepliesConfig()
    sender: SenderDefaults = SenderDefaults()
    receiver: ReceiverConfig = ReceiverConfig()


@lru_cache(maxsize=8)
def _load(path: Path) -> SmsConfig:
    return config.load(SmsConfig, path)


def load_sms_config(path: Path | None = None) -> SmsConfig:
    """``config/sms.yaml`` (or ``$QZ_CONFIG_DIR/sms.yaml``), validated."""
    return _load(Path(path or config.config_path("sms.yaml")))


class SmscSettings(SenderDefaults):
    """One SMSC bind and how to send on it: the account over the :class:`SenderDefaults`.

    Build with :meth:`from_config` so unset fields take the ``sender`` defaults
    of ``config/sms.yaml``; a connection's extras obey the same bounds as the file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(ge=1, le=65535)
    system_id: str = Field(min_length=1, max_length=15)    # SMPP 3.4: C-Octet String of at most 16
    password: str = ""
    system_type: str = Field("", max_length=12)
    source_addr: str = Field(min_length=1, max_length=20)  # the operator's 106 service code
    rate: float = Field(gt=0, le=100_000)                  # required here: the account's contract
    # the receiver binds as a receiver: one more mode than the sender's defaults allow
    bind_mode: Literal["transmitter", "transceiver", "receiver"] = "transmitter"

    @classmethod
    def from_config(cls, cfg: SmsConfig | None = None, **account) -> "SmscSettings":
        """Account fields (host, port, system_id, ...) over the config's sender defaults.

        ``None`` values in ``account`` are ignored, so optional connection
        extras can be passed straight through.
        """
        cfg = cfg or load_sms_config()
        values = cfg.sender.model_dump()
        values.update({k: v for k, v in account.items() if v is not None})
        return cls(**values)

    @property
    def limiter_key(self) -> str:
        """Who the contracted rate belongs to: the account on that SMSC."""
        return f"{self.system_id}@{self.host}:{self.port}"

    def state_path(self) -> Path:
        """Where journals and the shared rate limiter live (``QZ_SMS_STATE_DIR`` overrides)."""
        override = os.environ.get("QZ_SMS_STATE_DIR")
        path = Path(override or self.state_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path


def settings_from_connection(conn: dict, cfg: SmsConfig | None = None, **overrides) -> SmscSettings:
    """:class:`SmscSettings` from an Airflow-style connection dict (no Airflow needed).

    ``{"host", "port", "login" (system_id), "password", "extra": {system_type,
    source_addr, rate, window, bind_mode, ...}}`` — the JSON form of
    ``AIRFLOW_CONN_SMSC``. Extras may be a dict or a JSON string.
    """
    import json

    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    known = set(SmscSettings.model_fields)
    unknown = set(extra) - known
    if unknown:
        raise ValueError(f"unknown extras in the smsc connection: {sorted(unknown)}")
    account = dict(extra)
    account.update(host=conn.get("host") or "127.0.0.1", port=int(conn["port"]),
                   system_id=conn.get("login") or conn.get("system_id"), password=conn.get("password") or "")
    account.update(overrides)
    return SmscSettings.from_config(cfg, **account)

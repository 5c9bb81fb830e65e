"""Who may see which county in the portal: the user's roles in Airflow's auth manager.

One place grants a county: the role ``county_<code>``.

* Production (FAB auth manager): the user's FAB roles. ``county_<code>`` gives that county
  (deploy/airflow-init.sh creates one role per county in config/counties.yaml); a role in
  ``hq_roles`` of config/portal.yaml (``hq``, ``Admin``) gives every county. The user's name
  plays no part: a county is granted and revoked in FAB alone.
* The embedded default (SimpleAuthManager, scripts/airflow-env.sh): its users have one of
  Airflow's fixed roles (viewer, user, op, admin) and no custom ones, so a user's county role is
  its name: user ``county_<code>`` has role ``county_<code>``. ``hq_users`` and the ``admin`` role
  (in ``hq_roles``) give every county.

Anyone else is refused with the reason (no county role; an unknown county; several counties).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from qz_outbound import config
from qz_outbound.counties import county_names

COUNTY_ROLE = re.compile(r"^county_(\d{6})$")


class UploadLimits(config.StrictModel):
    """Hard limits on one outcome upload: a file beyond any of them is refused as a whole, with the
    limit named, before it costs the API server more than a bounded amount of work."""

    max_mb: int = Field(20, ge=1, le=200)                 # the file's bytes, counted as they stream in
    max_rows: int = Field(100_000, ge=10, le=1_000_000)   # rows under the header (blank ones too)
    max_columns: int = Field(64, ge=4, le=1024)
    max_unpacked_mb: int = Field(100, ge=1, le=1024)      # an XLSX's declared uncompressed size
    at_once: int = Field(2, ge=1, le=16)                  # uploads parsed at the same time per API server

    @property
    def max_bytes(self) -> int:
        return self.max_mb * 2**20


class PortalConfig(config.StrictModel):
    hq_users: list[str] = Field(default_factory=list)    # SimpleAuthManager user names (embedded default)
    hq_roles: list[str] = Field(default_factory=list)    # roles (FAB or SimpleAuthManager), any case
    keep_cycles: int = Field(30, ge=1, le=400)        # call lists downloadable; older ones are deleted
    upload_keep_days: int = Field(90, ge=1, le=3650)   # archived upload files, then deleted
    uploads: UploadLimits = Field(default_factory=UploadLimits)


def load_portal_config(path: Path | None = None) -> PortalConfig:
    return config.load(PortalConfig, path or config.config_path("portal.yaml"))


@dataclass(frozen=True)
class Viewer:
    """A signed-in portal user: HQ (every county) or one county office."""

    name: str
    hq: bool
    county: str | None

    def counties(self) -> list[str]:
        return list(county_names()) if self.hq else [self.county] if self.county else []

    def may_see(self, county_code: str) -> bool:
        return self.hq or county_code == self.county


class NotAllowed(PermissionError):
    """Refused; ``reason`` is what the user reads (Chinese), the message what the log says."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def roles_of(user: Any) -> tuple[list[str], bool]:
    """``(role names, from FAB)`` of an auth manager's user.

    A FAB user carries its roles (``user.roles``, Role objects with ``name``); a SimpleAuthManager
    user one fixed role (``user.role``), and its county role is its name.
    """
    roles = getattr(user, "roles", None)
    if roles is not None:
        return [getattr(r, "name", str(r)) for r in roles], True
    name = user.get_name() if hasattr(user, "get_name") else str(user)
    role = getattr(user, "role", None)
    role = getattr(role, "value", role)     # an enum on some versions
    return [r for r in (str(role).lower() if role else None, name) if r], False


def viewer_for(name: str, roles: list[str], cfg: PortalConfig, *, fab: bool = True) -> Viewer:
    """The portal's view of a user with these roles; raises :class:`NotAllowed` with the reason."""
    hq_roles = {r.lower() for r in cfg.hq_roles}
    if any(r.lower() in hq_roles for r in roles) or (not fab and name in cfg.hq_users):
        return Viewer(name, True, None)
    codes = sorted({m.group(1) for r in roles if (m := COUNTY_ROLE.match(r))})
    if not codes:
        raise NotAllowed(f"user {name!r} has no county_<code> role",
                         "您的账号没有县公司角色（county_<县代码>），请联系市公司管理员开通外呼门户")
    unknown = [c for c in codes if c not in county_names()]
    if unknown:
        raise NotAllowed(f"user {name!r} has the role of unknown county {unknown} (config/counties.yaml)",
                         f"您的账号的县公司角色 county_{unknown[0]} 不在县公司名单中，请联系市公司管理员")
    if len(codes) > 1:
        raise NotAllowed(f"user {name!r} has several county roles {codes}: a county office user has one",
                         "您的账号有多个县公司角色，一个县公司账号只能有一个，请联系市公司管理员")
    return Viewer(name, False, codes[0])


def viewer_for_user(user: Any, cfg: PortalConfig) -> Viewer:
    """The portal's view of the user Airflow's auth manager signed in."""
    name = user.get_name() if hasattr(user, "get_name") else str(user)
    roles, fab = roles_of(user)
    return viewer_for(name, roles, cfg, fab=fab)

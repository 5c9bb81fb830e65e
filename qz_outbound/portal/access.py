"""Who may see which county in the portal: config/portal.yaml over Airflow's identities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from qz_outbound import config
from qz_outbound.counties import county_names


class PortalConfig(config.StrictModel):
    hq_users: list[str] = Field(default_factory=list)
    hq_roles: list[str] = Field(default_factory=list)
    counties: dict[str, str] = Field(default_factory=dict)   # user name -> county code
    keep_cycles: int = Field(30, ge=1, le=400)        # call lists downloadable; older ones are deleted
    upload_keep_days: int = Field(90, ge=1, le=3650)   # archived upload files, then deleted

    @field_validator("counties")
    @classmethod
    def _known(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v.values()) - set(county_names()))
        if unknown:
            raise ValueError(f"unknown county code(s) {unknown}; see config/counties.yaml")
        return v


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
    pass


def viewer_for(name: str, role: str | None, cfg: PortalConfig) -> Viewer:
    """The portal's view of an Airflow user; raises :class:`NotAllowed` for users it does not know."""
    if name in cfg.hq_users or (role and role in cfg.hq_roles):
        return Viewer(name, True, None)
    if name in cfg.counties:
        return Viewer(name, False, cfg.counties[name])
    raise NotAllowed(f"user {name!r} has no county in config/portal.yaml")

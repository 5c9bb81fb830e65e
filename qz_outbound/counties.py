"""The city's counties and districts (区县), from ``config/counties.yaml``.

One list for every stage that needs county names or must reject an unknown
county (validation, call lists, the portal's access map).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import RootModel, field_validator

from qz_outbound import config


class Counties(RootModel[dict[str, str]]):
    @field_validator("root")
    @classmethod
    def _codes(cls, v: dict[str, str]) -> dict[str, str]:
        for code in v:
            if not (len(code) == 6 and code.isdigit()):
                raise ValueError(f"county code {code!r} must be a 6-digit administrative code")
        return v


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, str]:
    return dict(config.load(Counties, path).root)


def county_names(path: Path | None = None) -> dict[str, str]:
    """county_code -> Chinese name, in the config's order."""
    return _load(path or config.config_path("counties.yaml"))


def label(county_code: str) -> str:
    """How a county reads in the Airflow grid and in pages: "350582 晋江市"."""
    return f"{county_code} {county_names()[county_code]}"

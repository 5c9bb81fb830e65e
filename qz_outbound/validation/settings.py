"""The audit's settings (``config/validation.yaml``): the volume band and the control-share tolerance."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from qz_outbound import config


class VolumeBand(config.StrictModel):
    history_cycles: int = Field(default=7, ge=1, le=62)
    min_history: int = Field(default=3, ge=1)
    lower: float = Field(default=0.5, gt=0, lt=1)
    upper: float = Field(default=2.0, gt=1)

    @model_validator(mode="after")
    def _enough_history(self) -> "VolumeBand":
        if self.min_history > self.history_cycles:
            raise ValueError("min_history must not exceed history_cycles")
        return self


class ControlShareTolerance(config.StrictModel):
    min_customers: int = Field(default=200, ge=1)
    abs_tolerance: float = Field(default=0.01, ge=0, le=0.5)
    sigmas: float = Field(default=4.0, gt=0, le=10)


class ValidationConfig(config.StrictModel):
    volume: VolumeBand = VolumeBand()
    control_share: ControlShareTolerance = ControlShareTolerance()


def load_config(path: Path | None = None) -> ValidationConfig:
    return config.load(ValidationConfig, path or config.config_path("validation.yaml"))

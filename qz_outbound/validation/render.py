"""HQ's page of an audit (``target_validation.html``, in Chinese)."""

from __future__ import annotations

from dataclasses import asdict

import jinja2

from qz_outbound import TEMPLATE_DIR, clock
from qz_outbound.validation.checks import ControlRow, Volume
from qz_outbound.validation.messages import CHECK_TITLES, redact
from qz_outbound.validation.results import ValidationReport
from qz_outbound.validation.settings import ValidationConfig


def render_html(report: ValidationReport, volume: Volume, plan: list[ControlRow], settings: ValidationConfig) -> str:
    import great_expectations as gx

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    checks = [dict(asdict(c), title_zh=CHECK_TITLES[c.check.split(":")[0]][1],
                   title_en=CHECK_TITLES[c.check.split(":")[0]][0]) for c in report.checks]
    return redact(env.get_template("reports/target_validation.html.j2").render(
        report=report, checks=checks, volume=volume, control=plan, settings=settings,
        generated_at=clock.now().strftime("%Y-%m-%d %H:%M"), gx_version=gx.__version__))

"""What an audit found: each check's result, the report, and the gate the DAG task calls."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

# checks about one campaign: a failure holds back that campaign's rows, the others go on
CAMPAIGN_CHECKS = frozenset({"control_share", "active_campaign"})


@dataclass(frozen=True)
class CheckResult:
    """One check of the list. Counts and codes only: never a number or a name."""

    check: str                 # e.g. "number_format", "control_share:1114-007"
    passed: bool
    summary: str               # one line, English / Chinese
    unexpected: int | None     # rows (customers) at fault; None where a count does not apply
    expectation: str           # the GX expectation type
    expected: str              # what is expected, in Chinese (for HQ's page)
    observed: str              # what was found, in Chinese
    breakdown: dict[str, int] = field(default_factory=dict)  # rows at fault per county, campaign or reason
    campaigns: tuple[str, ...] = ()   # a failed check about campaigns: those it holds back

    @property
    def scope(self) -> str:
        """"campaign" (a failure holds back the campaigns at fault) or "list" (it stops the cycle)."""
        return "campaign" if self.check.split(":")[0] in CAMPAIGN_CHECKS else "list"


@dataclass
class ValidationReport:
    cycle_date: dt.date
    success: bool
    checked_rows: int
    failed: list[CheckResult]
    checks: list[CheckResult]
    html_path: Path
    json_path: Path
    held: dict[str, int] = field(default_factory=dict)   # campaign held back -> its rows in the list

    @property
    def blocking(self) -> list[CheckResult]:
        """Failed checks about the whole list: any of them stops the cycle."""
        return [c for c in self.failed if c.scope == "list"]

    @property
    def publishable(self) -> bool:
        """True when the list may be published (campaigns in ``held`` left out)."""
        return not self.blocking

    def summary(self) -> str:
        """The readable summary: a headline, then one line per failed check."""
        day = self.cycle_date.isoformat()
        if self.success:
            return (f"target list of {day} passed validation: {len(self.checks)} checks, "
                    f"{self.checked_rows:,} rows / {day} 目标清单校验通过（{len(self.checks)} 项，{self.checked_rows:,} 行）")
        held = ", ".join(f"{code} ({n:,} rows)" for code, n in sorted(self.held.items()))
        held_zh = "、".join(sorted(self.held))
        if self.publishable:
            lines = [f"target list of {day} failed {len(self.failed)} of {len(self.checks)} checks "
                     f"({self.checked_rows:,} rows), each about one campaign: held back {held}; "
                     f"the other campaigns are published / {day} 目标清单校验 {len(self.checks)} 项中 "
                     f"{len(self.failed)} 项未通过（均为单个活动的问题）：暂不发布活动 {held_zh}，其余活动照常发布"]
        else:
            lines = [f"target list of {day} failed {len(self.failed)} of {len(self.checks)} checks "
                     f"({self.checked_rows:,} rows); nothing is published for any county / "
                     f"{day} 目标清单校验未通过（{len(self.checks)} 项中 {len(self.failed)} 项），本周期所有区县均不发布"]
        lines += [f"  - {c.summary}" for c in self.failed]
        lines.append(f"  details / 详情: {self.html_path}")
        return "\n".join(lines)


class TargetListInvalid(Exception):
    """A check about the whole target list failed; the message is the readable summary."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.summary())


def require_valid(report: ValidationReport) -> None:
    """Raise :class:`TargetListInvalid` when a check about the whole list failed (the DAG task's
    gate). Failed checks about one campaign do not raise: their campaigns are held back
    (``report.held``, ``mkt_target_hold``) and the rest of the list is published."""
    if not report.publishable:
        raise TargetListInvalid(report)

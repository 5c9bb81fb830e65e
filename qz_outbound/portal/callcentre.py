"""The county portal's call-centre page (外呼日报): a day's calls of a county — on the list (new,
redials, callbacks), dialled, connected, accepted, the connect rate, per campaign and per agent.

``add_routes(app, viewer, engine, page, audit, require_county)`` adds ``GET /callcentre`` to the
portal app ``qz_outbound/portal/web.py`` builds, with that app's own viewer dependency and checks:
a county user sees only their own county (another county's is refused and audited); HQ picks any.
Counts only, never a number (the figures come from ``qz_outbound/callcentre.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from qz_outbound import callcentre, clock
from qz_outbound.counties import county_names


def _rate(connected: int, dialled: int) -> str:
    return f"{connected / dialled:.1%}" if dialled else "—"


def county_day(engine, day: dt.date, county: str) -> dict:
    """What the page shows for one county and day."""
    counts = callcentre.day_counts(engine, day, county)
    by_campaign = callcentre.call_ops(engine, day, day, "campaign", county)
    by_agent = callcentre.call_ops(engine, day, day, "agent_day", county)
    return {
        **counts,
        "connect": _rate(counts["connected"], counts["dialled"]),
        "campaigns": [{"campaign_code": r.campaign_code, "dialled": int(r.dialled), "connected": int(r.connected),
                       "accepted": int(r.accepted), "connect": _rate(int(r.connected), int(r.dialled))}
                      for r in by_campaign.itertuples()],
        "agents": [{"agent_id": r.agent_id or "（未填坐席工号）", "dialled": int(r.dialled),
                    "connected": int(r.connected), "accepted": int(r.accepted),
                    "connect": _rate(int(r.connected), int(r.dialled))} for r in by_agent.itertuples()],
    }


def add_routes(app: FastAPI, *, viewer: Callable, engine: Callable, page: Callable, require_county: Callable,
               parse_day: Callable[[str], dt.date]) -> None:
    @app.get("/callcentre", response_class=HTMLResponse)
    def callcentre_page(request: Request, day: str = "", county: str = "", v=Depends(viewer)):
        """外呼日报: the day's dialled / connected / accepted of the viewer's county (HQ: any county)."""
        shown_day = parse_day(day) if day else clock.today()
        chosen = county or (v.county if not v.hq else next(iter(v.counties()), ""))
        if chosen not in county_names():
            raise HTTPException(404, "没有这个区县")
        require_county(v, chosen, f"callcentre {chosen}")
        data = county_day(engine(), shown_day, chosen)
        return page(request, "callcentre.html", viewer=v, names=county_names(), county=chosen,
                    county_name=county_names()[chosen], counties=v.counties(), data=data,
                    suppress_days=callcentre.load_redial().wrong_number_suppress_days,
                    day=shown_day.isoformat(), prev_day=(shown_day - dt.timedelta(days=1)).isoformat(),
                    next_day=(shown_day + dt.timedelta(days=1)).isoformat())

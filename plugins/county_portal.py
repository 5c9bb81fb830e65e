"""The county portal (县公司外呼门户) in Airflow's UI: a FastAPI app mounted in the API server.

Identities are Airflow's: the app depends on Airflow's own user dependency (the UI's session
cookie or a Bearer JWT), and the user's role ``county_<code>`` is its county (portal/access.py). The pages and
every check live in :mod:`qz_outbound.portal.web`; this file only wires them in. Nothing here
touches a database at import time: the engine is made on the first request.
"""

from __future__ import annotations

from functools import lru_cache

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/county-portal"


@lru_cache(maxsize=1)
def _engine():
    from qz_db_hook import MARKETING_DB, engine_for

    return engine_for(MARKETING_DB)


def _outcomes_uploaded(county_code: str, rows: int) -> None:
    """Record an asset event on the call outcomes (counts only: any viewer can read asset events).

    Runs inside the API server, on Airflow's own asset manager, as its REST route for asset events
    does. Before outcomes_loop has been parsed the asset does not exist yet: nothing to trigger,
    and its 30-minute schedule picks the upload up.
    """
    import logging

    from airflow.assets.manager import asset_manager
    # The asset outcomes_loop is scheduled on (besides every 30 minutes): an upload that loaded rows
    # records an event on it, so the outcomes reach the contact history within a minute. The one
    # definition the DAGs use too (plugins/qz_dags.py), so the two cannot drift apart.
    from qz_dags import CALL_OUTCOMES
    from airflow.models.asset import AssetModel
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from sqlalchemy import select

    try:
        with create_session() as session:
            model = session.scalar(select(AssetModel).where(AssetModel.uri == CALL_OUTCOMES.uri).limit(1))
            if model is not None:
                asset_manager.register_asset_change(asset=model, timestamp=timezone.utcnow(),
                                                    extra={"county": county_code, "rows": rows},
                                                    source_is_api=True, session=session)
    except Exception as exc:   # the upload is loaded either way; the schedule catches up
        logging.getLogger(__name__).warning("could not record the call-outcome asset event (%s)",
                                            type(exc).__name__)


class _PortalApp:
    """ASGI app built on its first request, so loading plugins (the scheduler and workers do it too)
    does not import the portal's web stack."""

    def __init__(self):
        self._app = None
        self._lock = None

    @staticmethod
    def _build():
        from airflow.api_fastapi.core_api.security import get_user

        from qz_outbound.portal.web import create_app

        return create_app(get_user, _engine, on_upload=_outcomes_uploaded)

    async def __call__(self, scope, receive, send):
        if self._app is None:
            import anyio

            # importing the portal's stack takes seconds: in a thread, so the API server's other
            # requests (UI, REST, the workers' execution API) are answered meanwhile
            self._lock = self._lock or anyio.Lock()
            async with self._lock:
                if self._app is None:
                    self._app = await anyio.to_thread.run_sync(self._build)
        await self._app(scope, receive, send)


class CountyPortalPlugin(AirflowPlugin):
    name = "county_portal"
    fastapi_apps = [{"app": _PortalApp(), "url_prefix": URL_PREFIX, "name": "县公司外呼门户"}]
    external_views = [{"name": "外呼门户", "href": f"{URL_PREFIX}/", "destination": "nav",
                       "category": "browse", "url_route": "county-portal"},
                      {"name": "考核完成情况", "href": f"{URL_PREFIX}/kpi", "destination": "nav",
                       "category": "browse", "url_route": "county-kpi"}]

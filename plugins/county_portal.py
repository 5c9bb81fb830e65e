"""The county portal (县公司外呼门户) in Airflow's UI: a FastAPI app mounted in the API server.

Identities are Airflow's: the app depends on Airflow's own user dependency (the UI's session
cookie or a Bearer JWT), and ``config/portal.yaml`` maps user names to counties. The pages and
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


class _PortalApp:
    """ASGI app built on its first request, so loading plugins (the scheduler and workers do it too)
    does not import the portal's web stack."""

    def __init__(self):
        self._app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            from airflow.api_fastapi.core_api.security import get_user

            from qz_outbound.portal.web import create_app

            self._app = create_app(get_user, _engine)
        await self._app(scope, receive, send)


class CountyPortalPlugin(AirflowPlugin):
    name = "county_portal"
    fastapi_apps = [{"app": _PortalApp(), "url_prefix": URL_PREFIX, "name": "县公司外呼门户"}]
    external_views = [{"name": "外呼门户", "href": f"{URL_PREFIX}/", "destination": "nav",
                       "category": "browse", "url_route": "county-portal"}]

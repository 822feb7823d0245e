"""The operator's dashboard at `/`: server-rendered pages over GatewayService, nothing else.

`install()` adds the pages, their fragments (what the small script in static/ swaps in for live
refresh), the login and the static files to the root application. Every page needs the admin
password (`smsgw admin set-password`); every form carries the session's CSRF token.
"""

from __future__ import annotations

from api.dashboard.views import Dashboard, install

__all__ = ["Dashboard", "install"]

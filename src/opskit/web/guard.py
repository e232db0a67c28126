"""What every request passes first: the one Origin check, no control characters, a login,
and the security headers on every answer."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.requests import HTTPConnection

from opskit.errors import OpskitError
from opskit.web.context import current_user, dashboard

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Scripts only from the app's own files; inline styles are allowed because xterm.js sets
# its colours and cell sizes with a <style> element of its own.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
OPEN_PATHS = ("/login", "/favicon.ico")  # and /static/...


def expected_origin(connection: HTTPConnection, behind_proxy: bool) -> str:
    """The origin of the dashboard itself as this request or WebSocket reached it (behind
    a proxy: as the proxy says it was reached)."""
    host = connection.headers.get("host", "")
    scheme = {"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    if behind_proxy:
        host = connection.headers.get("x-forwarded-host", host)
        scheme = connection.headers.get("x-forwarded-proto", scheme)
    return f"{scheme}://{host}"


def same_origin(connection: HTTPConnection, behind_proxy: bool) -> bool:
    """Whether a request or WebSocket comes from the dashboard's own pages (a browser
    sends Origin with every POST, PUT and WebSocket; one without it is refused)."""
    return connection.headers.get("origin") == expected_origin(connection, behind_proxy)


def add_guard(app: FastAPI) -> None:
    """Check every HTTP request before its route (the terminal's WebSocket checks the
    same in its route: middleware sees no WebSockets)."""

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await _checked(request, call_next)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        # no-referrer makes form posts send "Origin: null"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


async def _checked(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    path = request.url.path
    behind_proxy = dashboard(request).options.behind_proxy
    if request.method not in ("GET", "HEAD") and not same_origin(request, behind_proxy):
        return JSONResponse(
            {"error": "a request from another origin (or without Origin) is refused"},
            status_code=403,
        )
    if CONTROL.search(path) or any(
        CONTROL.search(text) for item in request.query_params.multi_items() for text in item
    ):
        return JSONResponse(
            {"detail": "control characters in a name or parameter"}, status_code=422
        )
    if path in OPEN_PATHS or path.startswith("/static/"):
        return await call_next(request)
    try:
        found = current_user(request)
    except OpskitError as exc:  # opskit.yaml unreadable or invalid: nobody gets in
        return JSONResponse({"error": str(exc)}, status_code=503)
    if found is not None:
        return await call_next(request)
    if path.startswith("/api/"):
        return JSONResponse({"error": "log in first"}, status_code=401)
    return RedirectResponse("/login", status_code=303)

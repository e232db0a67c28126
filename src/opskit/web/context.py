"""What every router of the dashboard works with: one :class:`Dashboard` per app (the
opskit API, the logins, the runs), and the dependencies that give a route its user."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import attrs
from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from opskit.web.auth import COOKIE, LoginLimit, Sessions, TokenFile, User
from opskit.web.hosts import HostView

if TYPE_CHECKING:
    from opskit.settings import Settings
    from opskit.web.hosts import Hosts
    from opskit.web.run_service import RunService
    from opskit.web.shell import Assets


@attrs.define
class Options:
    root: str
    host: str | None = None
    terminal: bool = True
    behind_proxy: bool = False


@attrs.define
class Dashboard:
    """The state of one dashboard app, built once by :func:`opskit.web.app.create_app`."""

    options: Options
    hosts: Hosts  # the own root, and each host of the inventory
    settings: Settings
    sessions: Sessions
    token_file: TokenFile
    login_limit: LoginLimit
    assets: Assets
    runs: RunService
    # opskit serve sets this to its server's "should exit": the event streams end by
    # themselves then, instead of being cancelled (and logged) when the server stops
    stopping: Callable[[], bool] = lambda: False


def dashboard(connection: HTTPConnection) -> Dashboard:
    return connection.app.state.dashboard  # type: ignore[no-any-return]


def here(connection: HTTPConnection, host: str | None = None) -> HostView:
    """The host a request is about: ``?host=NAME`` of the inventory, else the own root
    (an unknown name: 404)."""
    return dashboard(connection).hosts.get(host)


def current_user(connection: HTTPConnection) -> User | None:
    """The user of a request or WebSocket (looked up once, against opskit.yaml as it is
    now); :class:`~opskit.errors.OpskitError` when opskit.yaml cannot be read."""
    if "opskit.user" not in connection.scope:
        board = dashboard(connection)
        cookie = connection.cookies.get(COOKIE)
        connection.scope["opskit.user"] = board.sessions.user(cookie, board.token_file.current())
    return connection.scope["opskit.user"]  # type: ignore[no-any-return]


def viewer(request: Request) -> User:
    """Any logged-in user (the guard has let only those through)."""
    found = current_user(request)
    if found is None:
        raise HTTPException(401, "log in first")
    return found


def operator(request: Request) -> User:
    """A logged-in operator: viewers get 403."""
    found = viewer(request)
    if not found.operator:
        raise HTTPException(403, f"{found.name} is a viewer: operators only")
    return found


Board = Annotated[Dashboard, Depends(dashboard)]
Here = Annotated[HostView, Depends(here)]
Viewer = Annotated[User, Depends(viewer)]
Operator = Annotated[User, Depends(operator)]


async def json_body(request: Request) -> Any:
    """The request's JSON body; 422 when it is not JSON."""
    try:
        return json.loads(await request.body())
    except ValueError:
        raise HTTPException(422, "the body is not JSON") from None


def openapi_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI description of a JSON body the endpoint reads itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}

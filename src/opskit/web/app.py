"""The dashboard: a FastAPI app over :class:`opskit.Ops` and the durable runs.

FastAPI (on uvicorn), because the JSON API that the pages use is also for scripts, and
FastAPI documents it (OpenAPI at ``/api/openapi.json``, behind the login like the rest);
its server-sent events and WebSockets come from Starlette underneath. The pages are plain
HTML and JavaScript served by the app itself: no build step, no CDN.

:func:`create_app` only builds the :class:`~opskit.web.context.Dashboard` and wires the
parts: the guard (:mod:`opskit.web.guard`), the login, the pages, and one router per area
of the JSON API (:mod:`opskit.web.routes`), with the runs behind
:class:`~opskit.web.run_service.RunService`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from opskit.errors import DockerUnavailable, HostError, NotFoundError, OpskitError
from opskit.runs import FILENAME, RunStore
from opskit.web.auth import LoginLimit, Sessions, TokenFile
from opskit.web.context import Dashboard, Options, json_body
from opskit.web.guard import CSP, add_guard
from opskit.web.hosts import Hosts
from opskit.web.routes.runs import operation_argv
from opskit.web.run_service import Broadcaster, RunService
from opskit.web.shell import PAGES, Assets

__all__ = [
    "CSP",
    "PAGES",
    "Assets",
    "Broadcaster",
    "Options",
    "create_app",
    "json_body",
    "operation_argv",
]


def create_app(options: Options) -> FastAPI:
    from opskit.api import Ops
    from opskit.web.routes import (
        backups,
        history,
        login,
        logs,
        overview,
        pages,
        runs,
        schedules,
        terminal,
    )

    ops = Ops(root=options.root, host=options.host)
    settings = ops.runtime.settings()
    os.makedirs(settings.state_dir, mode=0o700, exist_ok=True)
    store = RunStore(posixpath.join(settings.state_dir, FILENAME))
    run_service = RunService(store, options.root, options.host, settings.serve.keep_runs_days)
    token_file = TokenFile(ops.host, options.root)
    token_file.current()  # a broken opskit.yaml fails the start, not the first login
    board = Dashboard(
        options=options,
        hosts=Hosts(ops, settings, store, run_service.broadcaster),
        settings=settings,
        sessions=Sessions(store, settings.serve.session_hours),
        token_file=token_file,
        login_limit=LoginLimit(),
        assets=Assets(),
        runs=run_service,
    )
    app = FastAPI(
        title="opskit",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=closing_hosts,
    )
    app.state.dashboard = board
    app.add_exception_handler(OpskitError, opskit_error)  # type: ignore[arg-type]
    add_guard(app)
    for router in (login, pages, overview, backups, logs, schedules, history, runs):
        app.include_router(router.router)
    if options.terminal:
        app.include_router(terminal.router)
    return app


@contextlib.asynccontextmanager
async def closing_hosts(app: FastAPI) -> AsyncIterator[None]:
    """The fleet's connections closed when the server stops."""
    yield
    app.state.dashboard.hosts.close()


async def opskit_error(request: Request, exc: OpskitError) -> Response:
    """Errors a request can cause: unknown names 404, an unreachable engine or server 503,
    anything else the request asked for 422; one line, never a traceback."""
    if isinstance(exc, NotFoundError):
        status = 404
    elif isinstance(exc, (DockerUnavailable, HostError)):
        status = 503
    else:
        status = 422
    return JSONResponse({"detail": str(exc)}, status_code=status)

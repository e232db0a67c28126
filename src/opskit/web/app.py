"""The dashboard: a FastAPI app over :class:`opskit.Ops` and the durable runs.

FastAPI (on uvicorn), because the JSON API that the pages use is also for scripts, and
FastAPI documents it (OpenAPI at ``/api/openapi.json``, behind the login like the rest);
its server-sent events and WebSockets come from Starlette underneath. The pages are plain
HTML and JavaScript served by the app itself: no build step, no CDN.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import posixpath
import re
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

import attrs
from fastapi import FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from opskit.errors import DockerUnavailable, HostError, NotFoundError, OpskitError
from opskit.runs import FILENAME, RunStore, start
from opskit.web.auth import (
    COOKIE,
    LoginLimit,
    Sessions,
    TokenFile,
    User,
    check_token,
    log,
    printable,
)

KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 0.05
STOP_CHECK_SECONDS = 0.5
MAX_ID = 2**63 - 1  # SQLite's integers
EVENT_ID = re.compile(r"[0-9]{1,18}\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Scripts only from the app's own files; inline styles are allowed because xterm.js sets
# its colours and cell sizes with a <style> element of its own.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGES = {
    "/": ("overview", "Overview"),
    "/backups": ("backups", "Backups"),
    "/operations": ("operations", "Operations"),
    "/runs": ("runs", "Runs"),
    "/logs": ("logs", "Logs"),
    "/history": ("history", "History"),
    "/schedules": ("schedules", "Schedules"),
}


@attrs.define
class Options:
    root: str
    host: str | None = None
    terminal: bool = True
    behind_proxy: bool = False


class Assets:
    """The static files, under content-hashed names (cached for a year; the HTML never)."""

    def __init__(self) -> None:
        self.by_name: dict[str, str] = {}  # "app.js" -> "app.3f2a1c9d.js"
        self.files: dict[str, tuple[bytes, str]] = {}  # hashed name -> (content, type)
        folder = resources.files("opskit.web") / "static"
        for entry in [*folder.iterdir(), *(folder / "vendor").iterdir()]:
            if not entry.is_file() or not entry.name.endswith((".js", ".css")):
                continue
            content = entry.read_bytes()
            stem, _dot, extension = entry.name.rpartition(".")
            hashed = f"{stem}.{hashlib.sha256(content).hexdigest()[:10]}.{extension}"
            kind = "text/javascript" if extension == "js" else "text/css"
            self.by_name[entry.name] = hashed
            self.files[hashed] = (content, f"{kind}; charset=utf-8")

    def url(self, name: str) -> str:
        return f"/static/{self.by_name[name]}"


class Broadcaster:
    """One reader of new events for every open stream: it polls the store and hands each
    event to the streams' queues."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.last = store.last_id()
        self.queues: set[asyncio.Queue[Any]] = set()
        self.task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queues.add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._poll())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        self.queues.discard(queue)

    async def _poll(self) -> None:
        while self.queues:
            found = self.store.events(self.last)
            for event in found:
                self.last = event.id
                for queue in self.queues:
                    queue.put_nowait(event)
            if len(found) < 1000:
                await asyncio.sleep(POLL_SECONDS)


SCHEDULE_BODY = {
    "type": "object",
    "required": ["schedule"],
    "properties": {"schedule": {"type": "string", "example": "03:30"}},
}
RUN_BODY = {
    "type": "object",
    "required": ["operation", "project"],
    "properties": {
        "operation": {
            "type": "string",
            "enum": ["backup", "verify", "restore", "rebuild", "sync", "promote"],
        },
        "project": {"type": "string"},
        "env": {"type": "string"},
        "archive": {"type": "string"},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "dry_run": {"type": "boolean"},
        "confirm": {"type": "string", "description": "the project's name, for its last env"},
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI description of a JSON body the endpoint reads itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(options: Options) -> FastAPI:
    from opskit.api import Ops

    ops = Ops(root=options.root, host=options.host)
    settings = ops.runtime.settings()
    state_dir = settings.state_dir
    import os

    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    store = RunStore(posixpath.join(state_dir, FILENAME))
    store.reap()
    store.prune(settings.serve.keep_runs_days)
    sessions = Sessions(store, settings.serve.session_hours)
    token_file = TokenFile(ops.host, options.root)
    token_file.current()  # a broken opskit.yaml fails the start, not the first login
    login_limit = LoginLimit()
    assets = Assets()
    broadcaster = Broadcaster(store)
    app = FastAPI(
        title="opskit",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    # opskit serve sets this to its server's "should exit": the event streams end by
    # themselves then, instead of being cancelled (and logged) when the server stops
    app.state.stopping = lambda: False

    def stopping() -> bool:
        return bool(app.state.stopping())

    def current_user(request: Request) -> User | None:
        """The request's user (looked up once per request, against opskit.yaml as it is now)."""
        if "opskit.user" not in request.scope:
            cookie = request.cookies.get(COOKIE)
            request.scope["opskit.user"] = sessions.user(cookie, token_file.current())
        return request.scope["opskit.user"]  # type: ignore[no-any-return]

    @app.exception_handler(OpskitError)
    async def opskit_error(request: Request, exc: OpskitError) -> Response:
        """Errors a request can cause: unknown names 404, an unreachable engine or server
        503, anything else the request asked for 422; one line, never a traceback."""
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, (DockerUnavailable, HostError)):
            status = 503
        else:
            status = 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    def expected_origin(request: Request) -> str:
        host = request.headers.get("host", "")
        scheme = request.url.scheme
        if options.behind_proxy:
            host = request.headers.get("x-forwarded-host", host)
            scheme = request.headers.get("x-forwarded-proto", scheme)
        return f"{scheme}://{host}"

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        path = request.url.path
        if request.method not in ("GET", "HEAD") and request.headers.get(
            "origin"
        ) != expected_origin(request):
            response: Response = JSONResponse(
                {"error": "a request from another origin (or without Origin) is refused"},
                status_code=403,
            )
        elif CONTROL.search(path) or any(
            CONTROL.search(text) for item in request.query_params.multi_items() for text in item
        ):
            response = JSONResponse(
                {"detail": "control characters in a name or parameter"}, status_code=422
            )
        elif path in ("/login", "/favicon.ico") or path.startswith("/static/"):
            response = await call_next(request)
        else:
            try:
                found = current_user(request)
            except OpskitError as exc:  # opskit.yaml unreadable or invalid: nobody gets in
                response = JSONResponse({"error": str(exc)}, status_code=503)
            else:
                if found is not None:
                    response = await call_next(request)
                elif path.startswith("/api/"):
                    response = JSONResponse({"error": "log in first"}, status_code=401)
                else:
                    response = RedirectResponse("/login", status_code=303)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = (
            "same-origin"  # no-referrer makes form posts send "Origin: null"
        )
        if not path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def user_of(request: Request) -> User:
        found = current_user(request)
        if found is None:
            raise HTTPException(401, "log in first")
        return found

    def operator(request: Request) -> User:
        found = user_of(request)
        if not found.operator:
            raise HTTPException(403, f"{found.name} is a viewer: operators only")
        return found

    def page(name: str, title: str, user: User | None, body: str = "") -> HTMLResponse:
        nav = ""
        if user is not None:
            links = "".join(f'<a href="{path}">{label}</a>' for path, (_n, label) in PAGES.items())
            nav = (
                f"<nav>{links}<span class=user>{_escape(user.name)} ({user.role})</span>"
                '<form method=post action="/logout"><button>Log out</button></form></nav>'
            )
        role = user.role if user else ""
        html = f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>opskit: {title}</title>
<meta name=viewport content="width=device-width, initial-scale=1">
<link rel=stylesheet href="{assets.url("app.css")}">
<link rel=stylesheet href="{assets.url("xterm.css")}">
</head><body data-page="{name}" data-role="{role}" data-terminal="{int(options.terminal)}">
{nav}<main><h1>{title}</h1>{body}</main>
<script src="{assets.url("xterm.js")}"></script>
<script src="{assets.url("addon-fit.js")}"></script>
<script src="{assets.url("app.js")}"></script>
</body></html>"""
        return HTMLResponse(html)

    def login_form(message: str = "") -> HTMLResponse:
        form = (
            f"{message}<form method=post action=/login id=login>"
            "<label>Token <input type=password name=token autocomplete=off autofocus></label>"
            "<button>Log in</button></form>"
        )
        return page("login", "Log in", None, form)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, failed: str = "") -> HTMLResponse:
        return login_form(
            "<p class=bad id=login-failed>That token is not known.</p>" if failed else ""
        )

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        from urllib.parse import parse_qs

        address = printable(request.client.host if request.client else "unknown")
        wait = login_limit.wait(address)
        if wait:
            log(f"[warning] login refused from {address}: too many failed logins")
            response: Response = login_form(
                f"<p class=bad id=login-failed>Too many failed logins from {_escape(address)}:"
                f" try again in {wait:.0f} s.</p>"
            )
            response.status_code = 429
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
        found = check_token(token_file.current(), (form.get("token") or [""])[0])
        if found is None:
            login_limit.failed(address)
            return RedirectResponse("/login?failed=1", status_code=303)
        login_limit.succeeded(address)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            sessions.open(found),
            httponly=True,
            samesite="strict",
            secure=expected_origin(request).startswith("https:"),
            max_age=int(settings.serve.session_hours * 3600),
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    for path, (name, title) in PAGES.items():

        def show(request: Request, name: str = name, title: str = title) -> HTMLResponse:
            return page(name, title, user_of(request))

        app.get(path, include_in_schema=False)(show)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in assets.files:
            raise HTTPException(404)
        content, kind = assets.files[name]
        return Response(
            content,
            media_type=kind,
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    # -- the JSON API ------------------------------------------------------------------

    @app.get("/api/me")
    def me(request: Request) -> dict[str, Any]:
        found = user_of(request)
        return {"name": found.name, "role": found.role, "terminal": options.terminal}

    @app.get("/api/overview")
    def overview(request: Request) -> dict[str, Any]:
        """Every project and env: containers with state and health, the newest backup."""
        user_of(request)
        ops.runtime.reload()  # descriptors edited since are shown as they are now
        placements = ops.status()
        newest = {(p, e): a for p, e, a in ops.newest_backups()}
        envs = []
        for project in ops.projects():
            for env in project.environments:
                archive = newest.get((project.name, env))
                envs.append(
                    {
                        "project": project.name,
                        "env": env,
                        "containers": [
                            p.as_dict()
                            for p in placements
                            if p.project == project.name and p.environment == env
                        ],
                        "newest_backup": archive.as_dict() if archive else None,
                    }
                )
        return {"envs": envs}

    @app.get("/api/projects")
    def projects(request: Request) -> dict[str, Any]:
        """Projects with their envs and sync directions, for the operations form."""
        user_of(request)
        return {
            "projects": [
                {
                    "name": p.name,
                    "envs": list(p.environments),
                    "sync_pairs": [list(pair) for pair in (p.sync.pairs if p.sync else ())],
                    "promote": p.promote is not None,
                }
                for p in ops.projects()
            ]
        }

    @app.get("/api/backups")
    def backups(
        request: Request, project: str | None = None, env: str | None = None
    ) -> dict[str, Any]:
        """The archives in scope, newest first, with verified, drilled and offsite state."""
        user_of(request)
        return {"archives": [a.as_dict() for a in ops.backups(project, env)]}

    @app.get("/api/archives/{project}/{env}/{name}.tar")
    def download(request: Request, project: str, env: str, name: str) -> StreamingResponse:
        """The archive folder as a tar stream (its files as they are: zstd components, the
        manifest), for a copy elsewhere; verify it there with ``opskit verify``. Operators
        only: an archive holds all the data of its env (a prod dump: every customer's)."""
        operator(request)
        found = ops.project(project)
        found.check_env(env)
        archive = ops.backup_engine().find(found, env, name)
        folder, base = posixpath.split(archive.path)
        process = ops.host.popen(["tar", "-C", folder, "-cf", "-", "--", base], merge_stderr=False)

        def chunks() -> Any:
            try:
                while chunk := process.stdout.read(1 << 20):
                    yield chunk
            finally:
                process.kill()
                process.wait()

        return StreamingResponse(
            chunks(),
            media_type="application/x-tar",
            headers={"Content-Disposition": f'attachment; filename="{base}.tar"'},
        )

    @app.get("/api/logs")
    async def logs(
        request: Request,
        project: str,
        env: str,
        service: str,
        tail: int = Query(200, ge=0, le=MAX_ID),
    ) -> StreamingResponse:
        """A service's container log, live, as server-sent events (one line each)."""
        user_of(request)
        found = ops.containers(project, env, service)
        if not found:
            raise HTTPException(404, f"{project} {env} {service}: no container")
        argv = ["docker", "logs", "--follow", "--tail", str(max(0, min(tail, 5000))), found[0].name]
        return _event_stream(_log_lines(ops.host, argv, stopping))

    @app.get("/api/schedules")
    def schedules(request: Request) -> dict[str, Any]:
        """Each project's backup schedule (from its descriptor) and when it next runs."""
        from opskit.timers import next_elapse, on_calendar

        user_of(request)
        ops.runtime.reload()
        rows = []
        for project in ops.projects():
            schedule = project.backup.schedule if project.backup else None
            rows.append(
                {
                    "project": project.name,
                    "backup": project.backup is not None,
                    "schedule": schedule,
                    "next": next_elapse(ops.host, on_calendar(schedule)) if schedule else None,
                    "descriptor": project.path,
                }
            )
        return {"schedules": rows, "unit_dir": ops.runtime.settings().unit_dir}

    @app.put("/api/schedules/{name}", openapi_extra=_body(SCHEDULE_BODY))
    async def set_schedule(request: Request, name: str) -> dict[str, Any]:
        """Set a project's ``backup.schedule``: the descriptor is rewritten (validated, the
        rest of it as it was), then ``opskit timers --install --remove-stale`` runs."""
        from opskit.descriptor import with_backup_schedule
        from opskit.errors import DescriptorError
        from opskit.timers import CalendarError, calendar, on_calendar

        found = operator(request)
        body = await json_body(request)
        schedule = body.get("schedule") if isinstance(body, dict) else None
        if not isinstance(schedule, str) or not schedule.isprintable():
            raise HTTPException(422, 'expected {"schedule": "03:30"}')
        project = {p.name: p for p in ops.projects()}.get(name)
        if project is None:
            raise HTTPException(404, f"no project {name!r}")
        text = ops.host.read_text(project.path)
        try:
            edited = with_backup_schedule(project.path, text, schedule)
        except DescriptorError as exc:
            raise HTTPException(422, str(exc)) from None
        try:
            calendar(ops.host, on_calendar(schedule.strip()))
        except CalendarError as exc:
            raise HTTPException(
                422, f"{schedule!r} is not a systemd calendar expression: {exc}"
            ) from None
        partial = project.path + ".opskit-new"
        ops.host.run(["rm", "-f", "--", partial])
        with ops.host.open_write(partial) as out:
            out.write(edited.encode())
        ops.host.run(["chmod", "--reference", project.path, "--", partial])
        ops.host.run(["mv", "-f", "--", partial, project.path])
        ops.runtime.reload()
        return store_run(["timers", "--install", "--remove-stale"], found)

    @app.get("/api/history")
    def history(request: Request, project: str | None = None) -> dict[str, Any]:
        """The audit log: sync, promote, restore, rebuild."""
        user_of(request)
        return {"entries": ops.history(project)}

    @app.get("/api/runs")
    def runs(request: Request, limit: int = Query(50, ge=1, le=10000)) -> dict[str, Any]:
        user_of(request)
        store.reap()
        return {"runs": [r.as_dict() for r in store.runs(limit)], "last_event": store.last_id()}

    @app.get("/api/runs/{run_id}")
    def run(
        request: Request, run_id: str, after: int = Query(0, ge=0, le=MAX_ID)
    ) -> dict[str, Any]:
        """One run and its stored events after *after* (all of them by default)."""
        user_of(request)
        try:
            found = store.get(run_id)
        except KeyError:
            raise HTTPException(404, f"no run {run_id}") from None
        events = []
        while batch := store.events(after, run_id):
            events += [{"id": e.id, "run": e.run, **e.data} for e in batch]
            after = batch[-1].id
        return {"run": found.as_dict(), "events": events}

    @app.post("/api/runs", status_code=201, openapi_extra=_body(RUN_BODY))
    async def start_run(request: Request) -> dict[str, Any]:
        """Start an operation as a run of its own: ``{"operation": "backup", "project":
        "mdf", "env": "dev"}``; see docs/dashboard.md for each operation's fields."""
        found = operator(request)
        body = await json_body(request)
        argv = operation_argv(ops, body)
        return store_run(argv, found)

    def store_run(argv: list[str], found: User) -> dict[str, Any]:
        store.prune(settings.serve.keep_runs_days)  # a server that runs for months stays small
        started = start(store, argv, options.root, found.name, options.host)
        return started.as_dict()

    @app.get("/api/stream")
    async def stream(
        request: Request, after: int | None = Query(None, ge=0, le=MAX_ID)
    ) -> StreamingResponse:
        """Every run's events as server-sent events, each with its id: a reconnect
        (``Last-Event-ID``) resumes right after the last one delivered."""
        user_of(request)
        header = request.headers.get("last-event-id")
        last = int(header) if header and EVENT_ID.match(header) else (after or 0)
        return _event_stream(_events(broadcaster, store, last, stopping))

    if options.terminal:
        from opskit.web.terminal import terminal_session

        @app.websocket("/api/terminal")
        async def terminal(socket: WebSocket, project: str, env: str, service: str) -> None:
            try:
                found = sessions.user(socket.cookies.get(COOKIE), token_file.current())
            except OpskitError:
                found = None
            origin = socket.headers.get("origin")
            scheme = "https" if socket.url.scheme == "wss" else "http"
            host = socket.headers.get("host", "")
            if options.behind_proxy:
                host = socket.headers.get("x-forwarded-host", host)
                scheme = socket.headers.get("x-forwarded-proto", scheme)
            if origin != f"{scheme}://{host}" or found is None or not found.operator:
                await socket.close(code=4403)
                return
            await terminal_session(socket, ops, project, env, service)

    return app


async def json_body(request: Request) -> Any:
    """The request's JSON body; 422 when it is not JSON."""
    try:
        return json.loads(await request.body())
    except ValueError:
        raise HTTPException(422, "the body is not JSON") from None


def _event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """Server-sent events that no cache or reverse proxy holds back."""
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _next(queue: asyncio.Queue[Any], stopping: Callable[[], bool]) -> Any:
    """The queue's next item; None after KEEPALIVE_SECONDS without one, or when the server
    stops (the caller checks *stopping*)."""
    waited = 0.0
    while waited < KEEPALIVE_SECONDS and not stopping():
        try:
            return await asyncio.wait_for(queue.get(), STOP_CHECK_SECONDS)
        except TimeoutError:
            waited += STOP_CHECK_SECONDS
    return None


async def _events(
    broadcaster: Broadcaster, store: RunStore, last: int, stopping: Callable[[], bool]
) -> AsyncIterator[str]:
    queue = broadcaster.subscribe()
    try:
        yield "retry: 1000\n\n"
        # What was stored before the stream opened, then what the broadcaster hands over;
        # the ids say which ones this stream has already delivered.
        while batch := store.events(last):
            for event in batch:
                last = event.id
                yield _frame(event.id, {"run": event.run, **event.data})
        while not stopping():
            event = await _next(queue, stopping)
            if event is None:
                yield ": keepalive\n\n"
                continue
            if event.id <= last:
                continue
            last = event.id
            yield _frame(event.id, {"run": event.run, **event.data})
    finally:
        broadcaster.unsubscribe(queue)


async def _log_lines(
    host: Any, argv: list[str], stopping: Callable[[], bool]
) -> AsyncIterator[str]:
    """Lines of a following ``docker logs`` (stdout and stderr merged), read in a thread;
    the process ends when the stream does."""
    import threading

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes] = asyncio.Queue()
    process = host.popen(argv)

    def read() -> None:
        for raw in iter(process.stdout.readline, b""):
            loop.call_soon_threadsafe(lines.put_nowait, raw)
        loop.call_soon_threadsafe(lines.put_nowait, b"")

    threading.Thread(target=read, daemon=True).start()
    try:
        while not stopping():
            raw = await _next(lines, stopping)
            if raw is None:
                yield ": keepalive\n\n"
                continue
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\n")
            yield f"data: {json.dumps({'line': line}, ensure_ascii=False)}\n\n"
    finally:
        process.kill()
        await loop.run_in_executor(None, process.wait)


def _frame(event_id: int, data: dict[str, Any]) -> str:
    return f"id: {event_id}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def operation_argv(ops: Any, body: Any) -> list[str]:
    """The opskit command line of a requested operation, built from checked fields only
    (a project and env must exist; names never pass through unchecked)."""
    if not isinstance(body, dict):
        raise HTTPException(422, "expected a JSON object")
    operation = body.get("operation")
    fields = {k: v for k, v in body.items() if k != "operation"}

    def text(key: str, required: bool = True) -> str | None:
        value = fields.get(key)
        if value is None or value == "":
            if required:
                raise HTTPException(422, f"{operation}: {key} is required")
            return None
        if not isinstance(value, str) or value.startswith("-") or not value.isprintable():
            raise HTTPException(422, f"{operation}: {key} is not a valid value")
        return value

    def project_env(env_key: str = "env") -> tuple[Any, str]:
        name = text("project")
        known = {p.name: p for p in ops.projects()}
        if name not in known:
            raise HTTPException(422, f"no project {name!r}")
        env = text(env_key)
        if env not in known[name].environments:
            raise HTTPException(422, f"{name} has no env {env!r}")
        return known[name], env  # type: ignore[return-value]

    dry_run = fields.get("dry_run") or False
    if not isinstance(dry_run, bool):
        raise HTTPException(422, f"{operation}: dry_run is true or false")
    if not isinstance(fields.get("confirm", ""), str):
        raise HTTPException(422, f"{operation}: confirm is the project's name")

    def archive(project: Any, env: str, required: bool) -> list[str]:
        from opskit.archive import check_name
        from opskit.errors import OpskitError

        name = text("archive", required)
        if name is None:
            return []
        try:
            check_name(name)
        except OpskitError as exc:
            raise HTTPException(422, str(exc)) from None
        if not name.startswith(f"{project.name}-{env}-"):
            raise HTTPException(422, f"archive {name} is not one of {project.name} {env}")
        return ["--name", name]

    def confirmed(project: Any, env: str, can_dry_run: bool = True) -> list[str]:
        """--yes, once the page confirmed; a change to the last env needs the typed name."""
        if dry_run and can_dry_run:
            return ["--dry-run"]
        if env == project.environments[-1] and fields.get("confirm") != project.name:
            raise HTTPException(
                422, f"this changes {env}: type the project name ({project.name}) to go on"
            )
        return ["--yes"]

    if operation == "backup":
        project, env = project_env()
        return ["backup", project.name, env]
    if operation == "verify":
        project, env = project_env()
        return ["verify", project.name, env, *archive(project, env, required=False)]
    if operation == "restore":
        project, env = project_env()
        chosen = archive(project, env, required=True)
        return ["restore", project.name, env, *chosen, *confirmed(project, env, False)]
    if operation == "rebuild":
        project, env = project_env()
        return ["rebuild", project.name, env, *confirmed(project, env)]
    if operation in ("sync", "promote"):
        name = text("project")
        known = {p.name: p for p in ops.projects()}
        if name not in known:
            raise HTTPException(422, f"no project {name!r}")
        project = known[name]
        source, target = text("from"), text("to")
        if operation == "sync":
            allowed = [tuple(pair) for pair in (project.sync.pairs if project.sync else ())]
            if (source, target) not in allowed:
                raise HTTPException(422, f"{name}: sync {source} to {target} is not in sync.pairs")
        elif target not in project.environments or source not in project.environments:
            raise HTTPException(422, f"{name}: unknown env")
        return [operation, name, "--from", str(source), "--to", str(target),
                *confirmed(project, str(target))]  # fmt: skip
    raise HTTPException(422, f"unknown operation {operation!r}")

"""Logging in with a token from opskit.yaml (failed logins limited per address), and out."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opskit.web.auth import COOKIE, check_token, log, printable
from opskit.web.context import Board
from opskit.web.guard import expected_origin
from opskit.web.shell import escape, page

router = APIRouter(include_in_schema=False)


def login_form(board: Board, message: str = "") -> HTMLResponse:
    form = (
        f"{message}<form method=post action=/login id=login>"
        "<label>Token <input type=password name=token autocomplete=off autofocus></label>"
        "<button>Log in</button></form>"
    )
    return page(board.assets, board.options.terminal, "login", "Log in", None, form)


@router.get("/login")
def login_page(board: Board, failed: str = "") -> HTMLResponse:
    return login_form(
        board, "<p class=bad id=login-failed>That token is not known.</p>" if failed else ""
    )


@router.post("/login")
async def login(request: Request, board: Board) -> Response:
    address = printable(request.client.host if request.client else "unknown")
    wait = board.login_limit.wait(address)
    if wait:
        log(f"[warning] login refused from {address}: too many failed logins")
        response: Response = login_form(
            board,
            f"<p class=bad id=login-failed>Too many failed logins from {escape(address)}:"
            f" try again in {wait:.0f} s.</p>",
        )
        response.status_code = 429
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    form = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
    found = check_token(board.token_file.current(), (form.get("token") or [""])[0])
    if found is None:
        board.login_limit.failed(address)
        return RedirectResponse("/login?failed=1", status_code=303)
    board.login_limit.succeeded(address)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        board.sessions.open(found),
        httponly=True,
        samesite="strict",
        secure=expected_origin(request, board.options.behind_proxy).startswith("https:"),
        max_age=int(board.settings.serve.session_hours * 3600),
    )
    return response


@router.post("/logout")
def logout(request: Request, board: Board) -> Response:
    board.sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response

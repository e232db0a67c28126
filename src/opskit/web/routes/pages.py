"""The seven pages (each an HTML shell its script fills from the JSON API) and the static
files they load."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from opskit.web.context import Board, Viewer
from opskit.web.shell import PAGES, page

router = APIRouter(include_in_schema=False)


def _show(name: str, title: str) -> Callable[[Board, Viewer], HTMLResponse]:
    def show(board: Board, user: Viewer) -> HTMLResponse:
        return page(
            board.assets, board.options.terminal, name, title, user, hosts=board.hosts.names
        )

    return show


for _path, (_name, _title) in PAGES.items():
    router.get(_path)(_show(_name, _title))


@router.get("/static/{name}")
def static(board: Board, name: str) -> Response:
    if name not in board.assets.files:
        raise HTTPException(404)
    content, kind = board.assets.files[name]
    return Response(
        content,
        media_type=kind,
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )

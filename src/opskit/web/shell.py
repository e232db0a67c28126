"""The pages' HTML shell and the static files it loads (plain HTML and JavaScript served
by the app itself: no build step, no CDN)."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from importlib import resources

from fastapi.responses import HTMLResponse

from opskit.web.auth import User

PAGES = {
    "/": ("overview", "Overview"),
    "/backups": ("backups", "Backups"),
    "/operations": ("operations", "Operations"),
    "/runs": ("runs", "Runs"),
    "/logs": ("logs", "Logs"),
    "/history": ("history", "History"),
    "/schedules": ("schedules", "Schedules"),
}


class Assets:
    """The static files, under content-hashed names (cached for a year; the HTML never)."""

    def __init__(self) -> None:
        self.by_name: dict[str, str] = {}  # "app.js" -> "app.3f2a1c9d.js"
        self.files: dict[str, tuple[bytes, str]] = {}  # hashed name -> (content, type)
        folder = resources.files("opskit.web") / "static"
        # each page's script (static/pages/): every page loads them all, as they are small;
        # each adds only its page's function
        self.page_scripts = sorted(
            e.name for e in (folder / "pages").iterdir() if e.name.endswith(".js")
        )
        for entry in [
            *folder.iterdir(),
            *(folder / "vendor").iterdir(),
            *(folder / "pages").iterdir(),
        ]:
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


def page(
    assets: Assets,
    terminal: bool,
    name: str,
    title: str,
    user: User | None,
    body: str = "",
    hosts: Sequence[str] = (),
) -> HTMLResponse:
    """A page: the navigation for a logged-in *user* (with a host picker when there are
    *hosts* to pick from), *body*, and the scripts that fill it."""
    nav = ""
    if user is not None:
        links = "".join(f'<a href="{path}">{label}</a>' for path, (_n, label) in PAGES.items())
        if len(hosts) > 1:  # app.js selects the page's own (?host=) and goes to another
            options = "".join(f"<option>{escape(h)}</option>" for h in hosts)
            links += (
                f"<label class=host-picker>host <select id=host-picker>{options}</select></label>"
            )
        nav = (
            f"<nav>{links}<span class=user>{escape(user.name)} ({user.role})</span>"
            '<form method=post action="/logout"><button>Log out</button></form></nav>'
        )
    role = user.role if user else ""
    page_scripts = "\n".join(
        f'<script src="{assets.url(script)}"></script>' for script in assets.page_scripts
    )
    text = f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>opskit: {title}</title>
<meta name=viewport content="width=device-width, initial-scale=1">
<link rel=stylesheet href="{assets.url("app.css")}">
<link rel=stylesheet href="{assets.url("xterm.css")}">
</head><body data-page="{name}" data-role="{role}" data-terminal="{int(terminal)}">
{nav}<main><h1>{title}</h1>{body}</main>
<script src="{assets.url("xterm.js")}"></script>
<script src="{assets.url("addon-fit.js")}"></script>
<script src="{assets.url("app.js")}"></script>
{page_scripts}
</body></html>"""
    return HTMLResponse(text)


def escape(text: str) -> str:
    return html.escape(text, quote=True)

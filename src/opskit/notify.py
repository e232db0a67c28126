"""Alerts and dead-man pings, decided from the job events.

:class:`Notifier` subscribes to a runtime's event bus (as the audit log does; :class:`opskit.Ops`
subscribes both): it reads the root's projects and settings through the functions it is given. It sends

- an alert through apprise (ntfy, e-mail, Slack, Matrix, Telegram, ...) when a job fails or
  is rolled back, when a scheduled job is interrupted, and after a successful scheduled job
  only when ``notify.successes`` asks for it; the watch's own alerts (:func:`send`) are about
  states, so a watch job never alerts as a job;
- dead-man pings in the healthchecks.io style around every scheduled job that has a ping
  URL: ``/start`` when it begins, the URL itself on success, ``/fail`` on failure, with the
  job's last lines as the body (at most 100 kB). ``{env}`` in the URL gives each env its
  own check; a URL without it is one check for all envs, so once an env failed in a run
  the later envs' ``/start`` and success pings are held back (a failed dev then a good int
  must not turn it green).

An alert is written to be read half awake: the title says what failed where; the body
names the job, project, env, result, archive, size and duration and, on failure, the error
on one line. The job's log (compose output and all) goes to the ping, not into the alert.

apprise is imported only when something is sent, so start-up stays fast. A failed alert or
ping is a warning; it never fails the job.
"""

from __future__ import annotations

import collections
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opskit import events
from opskit.descriptor import expand
from opskit.errors import OpskitError
from opskit.output import human_bytes, warning

if TYPE_CHECKING:
    from opskit.descriptor import Notify, Project
    from opskit.settings import Settings

PING_BODY_LIMIT = 100_000
ERROR_LIMIT = 300  # characters of the error in an alert
PING_TIMEOUT = 10
# ntfy's priority and tags for each kind of message.
NTFY_STYLE = {
    "failed": ("high", "rotating_light"),
    "reminder": ("high", "warning"),
    "recovered": ("default", "white_check_mark"),
    "ok": ("low", "heavy_check_mark"),
}


def send(notify: Notify, title: str, body: str, state: str) -> None:
    """Send one alert to every URL of *notify*; *state* is a key of :data:`NTFY_STYLE`."""
    if not notify.urls:
        return
    import apprise

    sender = apprise.Apprise()
    for url in notify.urls:
        sender.add(_styled(url, state))
    kind = {
        "failed": apprise.NotifyType.FAILURE,
        "reminder": apprise.NotifyType.WARNING,
        "recovered": apprise.NotifyType.SUCCESS,
        "ok": apprise.NotifyType.SUCCESS,
    }[state]
    if not sender.notify(title=title, body=body, notify_type=kind):
        warning(f"the alert {title!r} could not be sent to every notify URL")


def _styled(url: str, state: str) -> str:
    """An ntfy URL with the priority and tags of *state*, unless it sets its own."""
    import urllib.parse

    if not url.startswith(("ntfy://", "ntfys://")):
        return url
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    priority, tags = NTFY_STYLE[state]
    query.setdefault("priority", priority)
    query.setdefault("tags", tags)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def ping(url: str, body: str = "") -> None:
    """One dead-man ping (POST, *body* capped at 100 kB)."""
    import urllib.request  # only when a ping goes out: it pulls in http.client and ssl

    data = body.encode()[-PING_BODY_LIMIT:]
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=PING_TIMEOUT) as response:
            response.read()
    except OSError as exc:
        warning(f"the dead-man ping {url} failed: {exc}")


class Notifier:
    """An event subscriber that sends alerts and pings for the jobs of one root on one
    host: *projects* and *settings* read the root's descriptors and ``opskit.yaml``."""

    def __init__(
        self,
        host_name: str,
        projects: Callable[[], Sequence[Project]],
        settings: Callable[[], Settings],
    ) -> None:
        self.host_name = host_name
        self.projects = projects
        self.settings = settings
        self.lines: dict[str, collections.deque[str]] = {}
        self.problem: str | None = None  # why alerts could not be decided or sent
        self.warned = False
        self.failed_urls: set[str] = set()  # ping URLs that got /fail in this run

    def _notify(self, project: str) -> Notify:
        try:
            found = [p for p in self.projects() if p.name == project]
        except OpskitError:  # no projects to read (the job's own error says why)
            found = []
        return self.settings().notify_for(found[0] if found else None)

    def __call__(self, event: Any) -> None:
        try:
            self._take(event)
        except Exception as exc:  # an alert that cannot be sent never fails the job
            self.problem = self.problem or str(exc)
        if isinstance(event, events.JobFinished) and self.problem and not self.warned:
            self.warned = True
            if self.problem not in (event.error or ""):  # not the job's own error again
                warning(f"alerts: {self.problem}")

    def _ping_url(
        self, notify: Notify, kind: str, project: str, envs: tuple[str, ...]
    ) -> str | None:
        template = notify.ping(kind)
        if template is None:
            return None
        return expand(template, envs[0] if envs else "", project)

    def _ping(self, url: str, ok: bool | None, body: str = "") -> None:
        """*ok* None: ``/start``. A URL shared by several envs that saw a failure in this
        run gets no more ``/start`` or success pings: it stays failed."""
        if ok is False:
            self.failed_urls.add(url)
        elif url in self.failed_urls:
            return
        if ok is None:
            ping(url.rstrip("/") + "/start")
        else:
            ping(url if ok else url.rstrip("/") + "/fail", body)

    def _take(self, event: Any) -> None:
        if isinstance(event, events.JobStarted):
            self.lines[event.job] = collections.deque(maxlen=2000)
            if event.scheduled:
                url = self._ping_url(
                    self._notify(event.project), event.kind, event.project, event.envs
                )
                if url:
                    self._ping(url, None)
        elif isinstance(event, events.LogLine | events.Warning):
            lines = self.lines.get(event.job)
            if lines is not None:
                text = event.line if isinstance(event, events.LogLine) else event.message
                lines.append(text)
        elif isinstance(event, events.JobFinished):
            self._finished(event)

    def _finished(self, event: events.JobFinished) -> None:
        lines = list(self.lines.pop(event.job, ()))
        notify = self._notify(event.project)
        ok = event.result == "ok"
        if event.scheduled:
            url = self._ping_url(notify, event.kind, event.project, event.envs)
            if url:
                log = "\n".join([*([event.error] if event.error else []), *lines])
                self._ping(url, ok, log)
        if event.kind == "watch":
            return  # the watch alerts on changes of state itself
        if not ok and (event.result != "cancelled" or event.scheduled):
            send(notify, title(event), message(event, self.host_name), "failed")
        elif ok and event.scheduled and notify.successes:
            send(notify, title(event), message(event, self.host_name), "ok")


def title(event: events.JobFinished) -> str:
    """``opskit: backup of mdf prod failed``; a job of the whole root (``offsite config``)
    names no project: ``opskit: offsite config failed``."""
    where = " ".join((event.project, *event.envs)).strip()
    return (
        f"opskit: {event.kind} of {where} {event.result}"
        if where
        else f"opskit: {event.kind} {event.result}"
    )


def message(event: events.JobFinished, host: str) -> str:
    """The body of a job's alert: one ``name: value`` line per fact, the error last."""
    details = event.details
    archive = details.get("archive")
    facts = [
        ("job", event.kind + (" (scheduled)" if event.scheduled else "")),
        ("project", event.project or "-"),
        ("env", ", ".join(event.envs) or "-"),
        ("result", event.result),
        ("archive", str(archive) if archive else "none"),
        *([("size", human_bytes(int(details["size"])))] if details.get("size") else []),
        ("duration", duration(event.seconds)),
        ("host", socket.gethostname() if host == "local" else host),
    ]
    if event.result != "ok":
        facts.append(("error", one_line(event.error or "no error was reported")))
    return "\n".join(f"{name}: {value}" for name, value in facts)


def one_line(text: str, limit: int = ERROR_LIMIT) -> str:
    """*text* on one line: line breaks and carriage returns (progress output) become
    spaces, runs of blanks one; cut at *limit* characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 12 s``, ``2 h 5 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"

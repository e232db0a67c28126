"""Built-in plugin: ``opskit serve``, the web dashboard (see :mod:`opskit.web.app`)."""

from __future__ import annotations

import click

from opskit.cli import CliState, command_options
from opskit.plugins import hookimpl

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.UsageError(f"--bind {bind}: expected HOST:PORT, e.g. 127.0.0.1:8765")
    return host, int(port)


@click.command()
@click.option(
    "--bind",
    help="HOST:PORT to listen on (default: serve.bind of opskit.yaml, else 127.0.0.1:8765).",
)
@click.option(
    "--behind-proxy",
    is_flag=True,
    help="A reverse proxy (TLS) is in front: allow any --bind and trust X-Forwarded-*.",
)
@click.option("--no-terminal", is_flag=True, help="No terminal into containers.")
@click.option(
    "--new-token", metavar="NAME", help="Print a new login token for opskit.yaml; serve nothing."
)
@click.option(
    "--role", type=click.Choice(["viewer", "operator"]), default="viewer", show_default=True
)
@command_options
def serve(
    state: CliState,
    bind: str | None,
    behind_proxy: bool,
    no_terminal: bool,
    new_token: str | None,
    role: str,
) -> None:
    """The web dashboard: overview, operations streamed live, runs, a terminal."""
    if new_token:
        from opskit.web.auth import new_token as make

        token, digest = make()
        click.echo(f"token (give it to {new_token}; it is not stored): {token}", err=True)
        state.out.line(f"- {{name: {new_token}, role: {role}, sha256: {digest}}}")
        return
    settings = state.ops.runtime.settings().serve
    bind = bind or settings.bind or "127.0.0.1:8765"
    behind_proxy = behind_proxy or settings.behind_proxy
    host, port = parse_bind(bind)
    if host not in LOOPBACK and not behind_proxy:
        raise click.UsageError(
            f"--bind {bind} is reachable from other machines: the dashboard has no TLS of its "
            "own, so tokens and cookies would cross the network in clear. Put a reverse proxy "
            "with TLS in front and add --behind-proxy, or bind to 127.0.0.1"
        )
    try:
        import uvicorn

        from opskit.web.app import Options, create_app
    except ImportError as exc:
        from opskit.errors import OpskitError

        raise OpskitError(
            f"opskit serve needs the web extra: pip install 'opskit[web]' ({exc.name})"
        ) from None
    runtime = state.ops.runtime
    if not runtime.settings().serve.tokens:
        from opskit.errors import OpskitError

        raise OpskitError(
            "no logins: add serve.tokens to opskit.yaml (opskit serve --new-token NAME --role operator)"
        )
    app = create_app(
        Options(
            root=state.ops.root,
            host=state.host,
            terminal=not no_terminal,
            behind_proxy=behind_proxy,
        )
    )
    click.echo(f"opskit serve: http://{bind}/", err=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            proxy_headers=behind_proxy,
            # Event streams end by themselves when the server stops (Dashboard.stopping);
            # the runs go on in their own processes; the pages reconnect and resume.
            timeout_graceful_shutdown=2,
        )
    )
    app.state.dashboard.stopping = lambda: server.should_exit
    server.run()


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    cli.add_command(serve)

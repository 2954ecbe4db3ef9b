"""``cdp stack``: run the local Kafka broker and Redis server (no Docker needed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from cdp.errors import ConfigError, StackError
from cdp.settings import get_settings
from cdp.stack import LocalStack, ServiceName

app = typer.Typer(
    help=(
        "Run the local stack: a single-node Kafka broker (KRaft) and a Redis server on "
        "127.0.0.1, managed as plain processes. State lives under CDP_STATE_DIR, the Kafka "
        "jars under CDP_CACHE_DIR; ports come from CDP_KAFKA_BOOTSTRAP, "
        "CDP_KAFKA_CONTROLLER_PORT and CDP_REDIS_URL."
    ),
    no_args_is_help=True,
)


def _echo(message: str) -> None:
    typer.echo(message)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn expected errors into a message on stderr and exit code 1."""
    try:
        yield
    except (StackError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _stack() -> LocalStack:
    return LocalStack(get_settings())


@app.command()
def up(
    timeout: float = typer.Option(
        90.0, "--timeout", min=1.0, help="Seconds to wait for both services to answer."
    ),
) -> None:
    """Start Kafka and Redis unless running; wait until both answer.

    The first run fetches the Kafka jars with Maven (about 30 s) and, as root,
    installs redis-server with apt-get if it is missing. Running `up` again is safe.
    """
    with _errors():
        _stack().up(progress=_echo, timeout=timeout)


@app.command()
def down(
    purge: bool = typer.Option(
        False, "--purge", help="Also delete the stack's data, config and logs (fresh next `up`)."
    ),
) -> None:
    """Stop the Kafka and Redis processes `up` started; keep their data (see --purge)."""
    with _errors():
        _stack().down(progress=_echo, purge=purge)


@app.command()
def status() -> None:
    """Show each service: state, pid, address, log file.

    Exit code 0 when every service is running, 1 otherwise.
    """
    with _errors():
        statuses = _stack().status()
    for st in statuses:
        pid = str(st.pid) if st.pid is not None else "-"
        line = f"{st.name:<6} {st.state:<10} pid {pid:<8} {st.address}  log: {st.log_path}"
        typer.echo(line + (f"  ({st.detail})" if st.detail else ""))
    raise typer.Exit(0 if all(st.running for st in statuses) else 1)


@app.command()
def logs(
    service: ServiceName = typer.Argument(..., help="Which service's log to show."),
    lines: int = typer.Option(50, "-n", "--lines", min=1, help="How many lines to show."),
) -> None:
    """Print the last lines of the log of kafka or redis."""
    with _errors():
        stack = _stack()
        path = stack.log_file(service)
        if not path.is_file():
            typer.echo(f"error: no log yet at {path} (has `cdp stack up` run?)", err=True)
            raise typer.Exit(1)
        typer.echo(stack.logs(service, lines))


if __name__ == "__main__":
    app()

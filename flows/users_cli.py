"""``diagnosis users``: add, list and disable the people who may sign in to the dashboard."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(help="Dashboard users: add, list, disable.", no_args_is_help=True)


def _url(ctx: typer.Context) -> str:
    """The store URL from the root command's settings, migrated to the current schema."""
    import db

    root = ctx.find_root()
    url: str = root.obj.db_url
    db.migrate(url)
    return url


@app.command("add")
def add(
    ctx: typer.Context,
    username: str,
    role: Annotated[str, typer.Option(help="clinician or admin.")] = "clinician",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          envvar="DIAGNOSIS_NEW_PASSWORD",
                                          help="Prompted for when not given (or set DIAGNOSIS_NEW_PASSWORD).")] = "",
) -> None:
    """Add a user; the password is stored as an argon2id hash."""
    import db

    try:
        with db.session_scope(_url(ctx)) as session:
            user = db.create_user(session, username, password, role=role)
    except ValueError as error:  # includes UserExistsError
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"added {user.role} {user.username}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List users with role, state and creation time."""
    import db

    with db.session_scope(_url(ctx)) as session:
        users = db.list_users(session)
    if not users:
        typer.echo("no users yet: diagnosis users add NAME --role admin")
    for user in users:
        state = "active" if user.active else "disabled"
        typer.echo(f"{user.username}\t{user.role}\t{state}\t{user.created_at:%Y-%m-%d %H:%M}")


@app.command("disable")
def disable(ctx: typer.Context, username: str) -> None:
    """Disable a user: they can no longer sign in; their reviews and audit rows stay."""
    import db

    try:
        with db.session_scope(_url(ctx)) as session:
            db.set_user_active(session, username, False)
    except LookupError as error:
        typer.secho(f"error: {error.args[0]}", fg="red", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"disabled {username}")

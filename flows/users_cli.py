"""``diagnosis users``: add, list and disable the people who may sign in to the dashboard."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(help="Dashboard users: add, list, disable.", no_args_is_help=True)


def _url(ctx: typer.Context) -> str:
    """The store URL from the root command's settings, migrated to the current schema."""
    from flows.cli import migrated_store

    return migrated_store(ctx.find_root())


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
    from flows.cli import user_errors

    with user_errors(ValueError), db.session_scope(_url(ctx)) as session:  # ValueError includes UserExistsError
        user = db.create_user(session, username, password, role=role)
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
    from flows.cli import user_errors

    with user_errors(LookupError), db.session_scope(_url(ctx)) as session:
        db.set_user_active(session, username, False)
    typer.echo(f"disabled {username}")

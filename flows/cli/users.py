"""``diagnosis users``: add, list, disable, re-role and unlock the people who may sign in to the dashboard."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

__all__ = ["PASSWORD_ENV", "app"]

PASSWORD_ENV = "DIAGNOSIS_NEW_PASSWORD"  # the new user's password when there is no terminal to ask on

app = typer.Typer(help="Dashboard users: add, list, disable, set-role, unlock.", no_args_is_help=True)


def _url(ctx: typer.Context) -> str:
    """The store URL from the root command's settings, migrated to the current schema."""
    from flows.cli.common import migrated_store

    return migrated_store(ctx.find_root())


@app.command("add")
def add(
    ctx: typer.Context,
    username: str,
    role: Annotated[str, typer.Option(help="clinician or admin.")] = "clinician",
    password: Annotated[str | None, typer.Option(envvar=PASSWORD_ENV, show_default=False,
                                                 help=f"Prompted for on a terminal; otherwise set {PASSWORD_ENV}.")] = None,
) -> None:
    """Add a user; the password is stored as an argon2id hash."""
    import db
    from flows.cli.common import user_errors

    if password is None:
        if not sys.stdin.isatty():
            typer.secho(f"error: no terminal to ask for {username}'s password; set {PASSWORD_ENV} (or pass "
                        "--password) when running without one", fg="red", err=True)
            raise typer.Exit(2)
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with user_errors(ValueError), db.session_scope(_url(ctx)) as session:  # ValueError includes UserExistsError
        user = db.create_user(session, username, password, role=role)
    typer.echo(f"added user {user.username} (role {user.role})")


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
    from flows.cli.common import user_errors

    with user_errors(LookupError), db.session_scope(_url(ctx)) as session:
        db.set_user_active(session, username, False)
    typer.echo(f"disabled {username}")


@app.command("set-role")
def set_role(ctx: typer.Context, username: str, role: str) -> None:
    """Change a user's role (clinician or admin); open dashboard sessions apply it on their next rerun."""
    import db
    from flows.cli.common import user_errors

    with user_errors(LookupError, ValueError), db.session_scope(_url(ctx)) as session:
        user = db.set_user_role(session, username, role)
    typer.echo(f"{user.username} is now {user.role}")


@app.command("unlock")
def unlock(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Argument(help="User whose failed sign-ins and lockout are cleared.")] = None,
    client: Annotated[str | None, typer.Option(help="Client key to clear instead or as well, as the audit log shows it (e.g. ip:10.0.0.7).")] = None,
) -> None:
    """Clear the sign-in throttle of a user and/or a client (after a lockout, see README "Sign-in policy")."""
    import db

    if username is None and client is None:
        typer.secho("error: name a user, --client, or both", fg="red", err=True)
        raise typer.Exit(2)
    with db.session_scope(_url(ctx)) as session:
        removed = db.reset_sign_in_throttle(session, username=username, client=client)
    typer.echo(f"unlocked ({removed} throttle record(s) cleared)" if removed else "nothing was throttled")

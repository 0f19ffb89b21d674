"""User-facing errors: each names the input field and what is allowed."""

from __future__ import annotations

from typing import NoReturn


class CartsimInputError(ValueError):
    """Bad user input. The CLI prints ``error: <field>: <message>`` and exits with code 2."""

    def __init__(self, field: str, message: str, allowed: str | None = None):
        self.field = field
        self.allowed = allowed
        text = f"{field}: {message}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


def choose(field: str, value: str, options: dict) -> object:
    """``options[value]`` or a clear error listing the valid names."""
    try:
        return options[value]
    except KeyError:
        raise CartsimInputError(field, f"unknown {field.lstrip('-')} {value!r}", ", ".join(sorted(options))) from None


def fail(err: Exception) -> NoReturn:
    """Command-line exit for bad input: one line ``error: <field>: <message>`` and exit code 2."""
    import typer  # only the command line needs it

    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(2)

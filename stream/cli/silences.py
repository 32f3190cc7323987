"""`driftwarden silences add|remove|list`: mute a model's firing alerts for a while (the commands live in
`stream.cli.alerts`, which keeps the old spellings `alerts silence|unsilence|silences` as hidden aliases)."""

from __future__ import annotations

import typer

from stream.cli.alerts import list_silences, silence, unsilence

__all__ = ["silences_app"]

silences_app = typer.Typer(
    help="Mute a model's firing alerts until a time (records on the silences topic; resolved alerts still pass).",
    no_args_is_help=True, rich_markup_mode="markdown",
)
silences_app.command("add")(silence)
silences_app.command("remove")(unsilence)
silences_app.command("list")(list_silences)

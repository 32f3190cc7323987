"""Every command's --help: flags render as flags, arguments by their names, docstrings re-flowed, one example."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from stream.cli.main import app


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in sorted(group.commands.items()):
        if getattr(command, "commands", None) is not None:
            yield from _commands(command, (*path, name))
        elif not command.hidden:
            yield (*path, name), command


COMMANDS = list(_commands(typer.main.get_command(app)))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"sql", "up", "config", "models show", "alerts list", "silences add", "silences remove",
            "silences list"} <= names
    assert not {"alerts silence", "alerts unsilence", "alerts silences"} & names  # hidden old spellings


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_renders_flags_as_flags_and_has_one_example(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "<bool>" not in text and "<str>" not in text, text
    assert not re.search(r"\{[A-Za-z_]+\}", text), text  # no {SPEC}-style argument names
    examples = [line for line in text.splitlines() if "Example: driftwarden " in line]
    assert len(examples) == 1, text
    assert examples[0].strip().startswith("Example: driftwarden " + " ".join(path))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_docstring_paragraphs_are_not_hard_wrapped(path: tuple[str, ...], command: Any) -> None:
    text = " ".join(_help(path).split())  # the help box is wide enough to hold every paragraph on one line
    lines = [line.strip(" │") for line in _help(path).splitlines()]
    for paragraph in (command.help or "").split("\n\n"):
        flowed = " ".join(paragraph.replace("`", "").split())
        assert flowed in text, flowed
        assert any(line.strip() == flowed for line in lines), f"{flowed!r} is wrapped in:\n" + "\n".join(lines)


def test_old_spellings_still_work() -> None:
    runner = CliRunner()
    for old in (["alerts", "silence", "--help"], ["alerts", "unsilence", "--help"], ["alerts", "silences", "--help"],
                ["alerts", "list", "--model", "x", "--format", "xml"]):
        result = runner.invoke(app, old)
        assert "No such command" not in result.output and "No such option" not in result.output, result.output

"""``lifecert COMMAND ...`` builds the parser of that one command (importing its module
only), and that parser is the one the whole ``lifecert`` parser holds for it: the same
arguments, the same help, the same Kafka principal. ``lifecert --help`` and an unknown word
still get every command."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from lifecert.cli import COMMAND_MODULES, _build, command_name, main
from lifecert.commands.plugins import plugin_names


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _help_of(parser: argparse.ArgumentParser) -> list[str]:
    """The help of a parser and of its sub-commands, depth first."""
    helps = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                helps += _help_of(sub)
    return helps


@pytest.mark.parametrize("module_name", COMMAND_MODULES)
def test_each_command_module_registers_the_command_named_after_it(module_name: str) -> None:
    parser = argparse.ArgumentParser(prog="lifecert")
    subparsers = parser.add_subparsers()
    importlib.import_module(module_name).register(subparsers)
    assert list(subparsers.choices) == [command_name(module_name)]


ALL = _build()
EVERY = sorted(_subparsers(ALL[0]))


def test_the_whole_parser_holds_lifecerts_commands_and_the_plugins() -> None:
    names = {command_name(m) for m in COMMAND_MODULES} | plugin_names()
    assert names <= set(EVERY) and "replay" in EVERY and "generate" in EVERY


@pytest.mark.parametrize("command", EVERY)
def test_one_command_alone_parses_and_helps_as_in_the_whole_parser(command: str) -> None:
    parser, plugins = _build(command)
    alone = _subparsers(parser)
    assert list(alone) == [command]
    assert _help_of(alone[command]) == _help_of(_subparsers(ALL[0])[command])
    assert set(plugins) == ({command} if command in ALL[1] else set())
    assert plugins.get(command) is ALL[1].get(command)


@pytest.mark.parametrize("first", [None, "--help", "-h", "nosuch"])
def test_help_and_an_unknown_word_get_every_command(first: str | None) -> None:
    parser, plugins = _build(first)
    assert sorted(_subparsers(parser)) == EVERY and plugins.keys() == ALL[1].keys()


def test_an_unknown_command_is_refused_naming_the_commands(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nosuch"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nosuch'" in err and "'replay'" in err and "'generate'" in err


def test_running_one_command_imports_no_other_commands_module() -> None:
    code = ("import json, sys\nfrom lifecert.cli import main\n"
            "try:\n    main(['replay', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules\n"
            "                        if m.startswith('lifecert.commands.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    others = {m for m in COMMAND_MODULES if m != "lifecert.commands.replay"}
    assert "lifecert.commands.replay" in loaded and not others & set(loaded), loaded

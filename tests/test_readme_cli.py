"""The CLI reference in README.md is generated from the `ostracon` argument parser.

The reference is rendered here from the parser's own actions (names, metavars, defaults, help
texts) in a fixed layout, so it does not depend on argparse's formatter, which changes between
Python versions and with the terminal width. `make docs-cli` (this file run with `--write`)
rewrites the README section; the test fails when the README and the parser disagree.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from ostracon.cli import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- cli-reference: generated from the parser by `make docs-cli`; tests/test_readme_cli.py checks it -->"
END = "<!-- /cli-reference -->"
#: Lines are wrapped to keep the reference readable in a terminal and in a rendered README.
WIDTH = 100
#: Option help texts start in this column.
HELP_COLUMN = 30


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of every subcommand, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper()


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _usage(name: str, sub: argparse.ArgumentParser) -> str:
    parts = [f"ostracon {name}"]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:
            parts.append(_metavar(action))
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        flag = action.option_strings[-1]
        text = f"{flag} {_metavar(action)}" if _takes_value(action) else flag
        parts.append(text if action.required else f"[{text}]")
    lines = [parts[0]]
    for part in parts[1:]:  # wrap between arguments, never inside one
        if len(lines[-1]) + 1 + len(part) > WIDTH:
            lines.append(" " * 8 + part)
        else:
            lines[-1] += " " + part
    return "\n".join(lines)


def _option_lines(sub: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        flags = ", ".join(action.option_strings)
        if _takes_value(action):
            flags += f" {_metavar(action)}"
        text = (action.help or "") % {"default": action.default, "prog": sub.prog}
        if _takes_value(action) and action.default is not None and "default" not in text:
            text = f"{text} (default {action.default})" if text else f"default {action.default}"
        head = f"  {flags}"
        if len(head) > HELP_COLUMN - 2:
            lines.append(head)
            head = ""
        wrapped = textwrap.wrap(text, WIDTH - HELP_COLUMN, break_long_words=False, break_on_hyphens=False)
        for i, part in enumerate(wrapped or [""]):
            lines.append(f"{head if i == 0 else '':<{HELP_COLUMN}}{part}".rstrip())
        if not lines[-1]:
            lines.pop()
    return lines


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The README's CLI section (between the markers), rendered from `ostracon`'s parser."""
    out = ["```"]
    for name, summary, sub in _subcommands(parser or build_parser()):
        out.append(_usage(name, sub))
        out.append(f"    {summary}")
        out.extend(_option_lines(sub))
        out.append("")
    out[-1] = "```"
    return "\n".join(out)


def readme_section(text: str) -> str:
    start = text.index(BEGIN) + len(BEGIN)
    return text[start:text.index(END, start)].strip("\n")


def write_readme() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END, start)
    README.write_text(text[:start] + "\n" + cli_reference() + "\n" + text[end:], encoding="utf-8")


def test_readme_cli_reference_matches_the_parser() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "README.md lost its CLI reference markers"
    assert readme_section(text) == cli_reference(), "README.md's CLI reference is stale: run `make docs-cli`"


def test_every_subcommand_and_option_is_in_the_readme() -> None:
    section = readme_section(README.read_text(encoding="utf-8"))
    for name, _, sub in _subcommands(build_parser()):
        assert f"ostracon {name}" in section
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in section, f"ostracon {name} {flag} is missing from README.md"


def test_the_reference_follows_the_parser() -> None:
    parser = build_parser()
    before = cli_reference(parser)
    for name, _, sub in _subcommands(parser):
        if name == "log":
            sub.add_argument("--not-in-readme", action="store_true", help="x")
    after = cli_reference(parser)
    assert "--not-in-readme" not in before and "--not-in-readme" in after


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_readme()
    else:
        print(cli_reference())

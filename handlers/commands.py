"""Chat commands: one registry, each command a small function returning the reply text."""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.context import Context


class UserError(Exception):
    "Something the user can fix; the message (Chinese, with an example) is the reply."


@dataclass
class Turn:
    """One message from a bound person, as commands see it."""

    ctx: Context
    person: dict
    roles: set[str]
    text: str
    at: dt.datetime
    inbox_id: int = 0  # set when the message's row is written, just before the command runs
    args: str = ""


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    roles: frozenset[str]
    usage: str
    run: Callable[[Turn], str]
    takes_args: bool
    # when set, only text whose arguments match is this command (收到 12 is, 收到 alone is
    # the acknowledgement every member sends, DESIGN §3)
    args_pattern: re.Pattern[str] | None = None


COMMANDS: list[Command] = []
ROLE_CN = {"member": "网格员", "secretary": "书记", "monitor": "督查员", "medic": "医护"}


def command(
    *words: str,
    roles: set[str],
    usage: str,
    takes_args: bool = False,
    args_pattern: str | None = None,
) -> Callable[[Callable[[Turn], str]], Callable[[Turn], str]]:
    """Register a command under its words (the first is its name) for the given roles."""
    pattern = re.compile(args_pattern) if args_pattern is not None else None

    def register(run: Callable[[Turn], str]) -> Callable[[Turn], str]:
        COMMANDS.append(Command(words, frozenset(roles), usage, run, takes_args, pattern))
        return run

    return register


_SEPARATOR = re.compile(r"^[\s:：,，]+")


def _match(text: str, cmd: Command, roles: set[str]) -> str | None:
    """The arguments if `text` invokes `cmd`, else None."""
    args = _words_match(text, cmd, roles)
    if args is not None and cmd.args_pattern is not None and not cmd.args_pattern.match(args):
        return None
    return args


def _words_match(text: str, cmd: Command, roles: set[str]) -> str | None:
    for word in sorted(cmd.words, key=len, reverse=True):
        if text == word:
            return ""
        if not cmd.takes_args or not text.startswith(word):
            continue
        rest = text[len(word) :]
        if _SEPARATOR.match(rest):
            return _SEPARATOR.sub("", rest)
        # "查张三" by voice: a one-character word glued to its argument is only a command for
        # someone who does not report, or a member's report like "查某 36.5" would be lost
        if len(word) >= 2 or "member" not in roles:
            return rest.strip()
    return None


def _spelled_out(text: str, cmd: Command) -> bool:
    """The command word alone or followed by a separator (解除 张三), not glued to a name."""
    return any(
        text == word or (text.startswith(word) and _SEPARATOR.match(text[len(word) :]))
        for word in cmd.words
    )


@functools.cache
def _openings(_count: int) -> frozenset[str]:
    """The first characters of the command words (cached per number of commands)."""
    return frozenset(word[0] for cmd in COMMANDS for word in cmd.words)


def find_command(turn: Turn) -> tuple[Command, str] | None:
    """The command the text invokes and its arguments; UserError when the role may not."""
    _load_commands()
    if turn.text[:1] not in _openings(len(COMMANDS)):  # most reports: no command starts so
        return None
    matches = [
        (cmd, args) for cmd in COMMANDS if (args := _match(turn.text, cmd, turn.roles)) is not None
    ]
    if not matches:
        return None
    allowed = [(cmd, args) for cmd, args in matches if cmd.roles & turn.roles]
    if not allowed:
        cmd = matches[0][0]
        if "member" in turn.roles and cmd.args_pattern is not None:
            return None  # 收到 36.5 from a member with one subject is a report, not 收到 N
        who = "、".join(ROLE_CN[r] for r in sorted(cmd.roles) if r in ROLE_CN)
        if "member" in turn.roles and cmd.takes_args and not _spelled_out(turn.text, cmd):
            return None  # a member's text that merely starts like a command: read it as a report
        raise UserError(f"“{cmd.words[0]}”仅限{who}使用。发送“帮助”查看您可用的命令。")
    return allowed[0]


def allowed_commands(roles: set[str]) -> list[Command]:
    """The commands these roles may use, one per name, in registry order."""
    _load_commands()
    seen: set[str] = set()
    allowed = []
    for cmd in COMMANDS:
        if cmd.roles & roles and cmd.words[0] not in seen:
            seen.add(cmd.words[0])
            allowed.append(cmd)
    return allowed


def help_text(roles: set[str], unknown: str | None = None) -> str:
    """Only what this person may use (DESIGN §4): the example is one of their commands."""
    commands = allowed_commands(roles)
    lines = []
    if unknown is not None:
        lines.append("没看懂这条消息。")
    if "member" in roles:
        lines += [
            "上报请这样写，例如：张三 36.5 正常，李四 36.8",
            "有症状：王五 37.6 咳嗽 乏力；联系不上：王五未联系上；都好：全部正常",
        ]
    else:
        example = next((cmd for cmd in commands if cmd.run is not show_help), None)
        if example is not None:
            word, _, what = example.usage.partition(" — ")
            lines.append(f"例如发送“{word}”查看{what}。" if what else f"例如发送“{word}”。")
    lines.append("可用命令：")
    lines += [f"· {cmd.usage}" for cmd in commands]
    return "\n".join(lines)


_loaded = False


def _load_commands() -> None:
    """Import the modules whose decorators fill the registry (once)."""
    global _loaded
    if not _loaded:
        from handlers import member_commands, secretary_commands  # noqa: F401

        importlib.import_module("handlers.acks")  # after those: last in the help text

        _loaded = True


@command(
    "帮助",
    "help",
    "?",
    "？",
    "菜单",
    "用法",
    roles={"member", "secretary", "monitor", "medic", "admin"},
    usage="帮助 — 查看用法",
)
def show_help(turn: Turn) -> str:
    return help_text(turn.roles)

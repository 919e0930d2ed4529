"""The tree says where things live, and imports flow one way: from the edges (web pages, the
WeChat wire, the command line, serving) down to channels, handlers, schedules and storage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("bot.web", "bot.wechat", "bot.cli", "bot.serving")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def reaches(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("handlers", EDGES),
        ("storage", EDGES + ("handlers", "schedules", "bot.channels")),
        ("schedules", EDGES),
        ("bot/channels", EDGES + ("schedules",)),
        ("bot/wechat", ("bot.web", "bot.cli", "bot.serving")),
    ],
)
def test_lower_layers_never_import_the_edges(folder: str, forbidden: tuple[str, ...]) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in python_files(folder)
        for module in sorted(imported_modules(path))
        if reaches(module, forbidden)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "package, holds",
    [
        ("bot/wechat", {"callback.py", "crypto.py", "message_xml.py", "reply.py"}),
        ("bot/web", {"app.py", "views.py", "sim.py", "health.py"}),
        ("bot/cli", {"main.py", "options.py", "routine.py"}),
        ("bot/channels", {"mp.py", "work.py", "api.py"}),
        ("bot/serving", {"server.py", "background.py", "gunicorn_hooks.py"}),
    ],
)
def test_each_kind_of_module_has_its_package(package: str, holds: set[str]) -> None:
    assert holds <= {p.name for p in (ROOT / package).glob("*.py")}


def test_bot_top_level_holds_only_what_every_edge_shares() -> None:
    top = {p.name for p in (ROOT / "bot").glob("*.py")}
    assert top == {"__init__.py", "config.py", "clock.py", "context.py", "links.py", "logs.py"}

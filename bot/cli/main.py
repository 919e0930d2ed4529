"""The `gridwatch` command line (DESIGN §7)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from bot.cli.options import at_option, common_options, day_option, print_json, time_option
from bot.clock import now as clock_now
from bot.config import ConfigError, load_config
from bot.context import Context


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gridwatch")
def cli() -> None:
    """gridwatch: 一日三联系、一日两汇报 — the home-quarantine monitoring chatbot."""


@cli.command()
@common_options
def init(ctx: Context) -> None:
    """Create the database or migrate it to the current schema."""
    from storage.db import schema_version

    click.echo(f"database ready, schema version {schema_version(ctx.db)}")


@cli.group()
def roster() -> None:
    """Import or export the roster (units, people, subjects)."""


@roster.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate only; change nothing.")
@common_options
def roster_import(ctx: Context, file: Path, dry_run: bool) -> None:
    """Import FILE: an .xlsx with sheets units/people/subjects, or a folder of .csv files."""
    from storage.roster import import_roster
    from storage.roster_file import RosterFileError

    try:
        report = import_roster(
            ctx.db,
            file,
            now=clock_now(ctx.config.tz),
            categories=ctx.config.categories,
            period=ctx.config.period_days,
            dry_run=dry_run,
        )
    except RosterFileError as error:
        raise click.ClickException(str(error)) from None
    if report.errors:
        for line in report.errors:
            click.echo(line, err=True)
        raise click.ClickException(f"名单有 {len(report.errors)} 处错误，未导入任何数据")
    if dry_run:
        click.echo("检查通过（--dry-run，未写入）")
    else:
        click.echo(f"导入完成：{report.summary()}")


@roster.command(name="export")
@click.argument("file", type=click.Path(path_type=Path))
@common_options
def roster_export(ctx: Context, file: Path) -> None:
    """Write the roster to FILE.xlsx (re-importable)."""
    from storage.roster_export import export_roster

    if file.suffix.lower() != ".xlsx":
        raise click.BadParameter("the export file must end in .xlsx")
    try:
        export_roster(ctx.db, file)
    except OSError as error:
        raise click.ClickException(f"cannot write {file}: {error.strerror or error}") from None
    click.echo(f"written {file}")


@cli.command()
@click.option("--unit", metavar="CODE", help="A unit; its descendants are included.")
@click.option("--date", "date_text", metavar="D", help="Only this date (YYYY-MM-DD).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "xlsx", "json"]),
    required=True,
    help="json for scripts; csv (UTF-8, BOM) and xlsx (needs --out) for Excel, Chinese headers.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write to FILE instead of stdout.")
@common_options
def ledger(
    ctx: Context, unit: str | None, date_text: str | None, fmt: str, out: Path | None
) -> None:
    """The ledger: one row per current report (date, slot, unit, subject, ...); xlsx adds the
    problem ledger (问题台账) as a second sheet."""
    from storage.ledger import ledger_rows
    from storage.ledger_files import ledger_csv, ledger_xlsx
    from storage.needs import problem_item, problems
    from storage.units import descendants, get_unit

    if unit is not None and get_unit(ctx.db, unit) is None:
        raise click.BadParameter(f"unknown unit {unit!r}", param_hint="--unit")
    day = day_option(date_text, ctx) if date_text else None
    rows = ledger_rows(
        ctx.db,
        deadlines={slot: times.deadline for slot, times in ctx.config.slots.items()},
        tz=ctx.config.tz,
        unit=unit,
        day=day,
    )
    names = {r["code"]: r["name"] for r in ctx.db.query("SELECT code, name FROM units")}
    if fmt == "xlsx":
        if out is None:
            raise click.BadParameter("xlsx needs --out FILE.xlsx", param_hint="--out")
        now = clock_now(ctx.config.tz)
        codes = descendants(ctx.db, unit) if unit is not None else list(names)
        items = [problem_item(need, now) for need in problems(ctx.db, codes)]
        _write(out, ledger_xlsx(rows, names, items))
        click.echo(f"written {out} ({len(rows)} rows, {len(items)} problems)")
        return
    if fmt == "csv":
        text = ledger_csv(rows, names)
    else:
        text = json.dumps(rows, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        _write(out, text.encode("utf-8"))
        click.echo(f"written {out} ({len(rows)} rows)")


def _write(path: Path, data: bytes) -> None:
    """Write an output file; a path that cannot be written is a clear error, not a traceback."""
    try:
        path.write_bytes(data)
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror or error}") from None


@cli.command()
@click.option("--since", metavar="TIME", help="Only messages at or after TIME.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option(
    "--retry",
    "retry_ids",
    type=int,
    multiple=True,
    metavar="ID",
    help="Send failed or undeliverable message ID again now (repeatable).",
)
@click.option("--retry-failed", is_flag=True, help="Send every failed message again now.")
@common_options
def outbox(
    ctx: Context, since: str | None, as_json: bool, retry_ids: tuple[int, ...], retry_failed: bool
) -> None:
    """Every outbound message: id, at, to, person, kind, text, status."""
    from storage.outbox import outbox_json, outbox_rows

    if retry_ids or retry_failed:
        _retry(ctx, list(retry_ids) if retry_ids else None)
    rows = outbox_rows(ctx.db, time_option(since, ctx) if since else None)
    if as_json:
        print_json([outbox_json(row) for row in rows])
        return
    for row in rows:
        error = f" ({row['error']})" if row["error"] else ""
        first_line = row["text"].splitlines()[0] if row["text"] else ""
        click.echo(
            f"{row['id']:>5} {row['at']} {row['kind']:<17} {row['status']:<8}"
            f" x{row['attempts']} {row['person'] or row['recipient']}: {first_line}{error}"
        )


def _retry(ctx: Context, ids: list[int] | None) -> None:
    from bot.channels import channel_for, deliver_pending
    from storage.outbox import requeue

    now = clock_now(ctx.config.tz)
    count = requeue(ctx.db, ids, now)
    if ids and count < len(ids):
        raise click.ClickException(
            "only failed or undeliverable messages can be retried; see `gridwatch outbox`"
        )
    deliver_pending(ctx.db, channel_for(ctx.config), now)
    click.echo(f"{count} message(s) sent again", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option(
    "--rehandle",
    "rehandle_ids",
    type=int,
    multiple=True,
    metavar="ID",
    help="Handle failed message ID again (repeatable); the answer goes to its sender.",
)
@click.option("--rehandle-errors", is_flag=True, help="Handle every failed message again.")
@common_options
def inbox(
    ctx: Context, as_json: bool, rehandle_ids: tuple[int, ...], rehandle_errors: bool
) -> None:
    """Inbound messages whose handling failed (kept raw, the sender told so): id, at,
    sender, text, error; and handling them again once what failed is mended."""
    from bot.channels import channel_for, deliver_pending
    from handlers.pipeline import rehandle
    from storage.inbox import failed_inbound

    if rehandle_ids or rehandle_errors:
        ids = list(rehandle_ids) or [row["id"] for row in failed_inbound(ctx.db)]
        results = [rehandle(ctx, inbox_id) for inbox_id in ids]
        deliver_pending(ctx.db, channel_for(ctx.config), clock_now(ctx.config.tz))
        handled = [r for r in results if r is not None and r.outcome != "error"]
        click.echo(f"{len(handled)} of {len(ids)} message(s) handled", err=True)
        missing = [i for i, r in zip(ids, results, strict=True) if r is None]
        if rehandle_ids and missing:
            raise click.ClickException(
                f"no failed message with id {', '.join(map(str, missing))}; see `gridwatch inbox`"
            )
    rows = failed_inbound(ctx.db)
    if as_json:
        keys = ("id", "at", "sender", "text", "error")
        print_json([{key: row[key] for key in keys} for row in rows])
        return
    for row in rows:
        click.echo(
            f"{row['id']:>5} {row['at']} {row['sender']}: {row['text'][:60]} ({row['error']})"
        )


@cli.command()
@click.option(
    "--from", "sender", required=True, metavar="WECHAT_ID", help="The sender's WeChat id."
)
@click.option("--at", "at_text", metavar="TIME", help="When it was sent (default: now).")
@click.argument("text")
@common_options
def say(ctx: Context, sender: str, at_text: str | None, text: str) -> None:
    """Send one inbound message through the real pipeline; print the reply."""
    from bot.channels import channel_for, deliver_pending
    from handlers.pipeline import Incoming, handle_message

    at = time_option(at_text, ctx)
    message = Incoming(
        channel="console", sender=sender, text=text, at=at, received_at=clock_now(ctx.config.tz)
    )
    handled = handle_message(ctx, message)
    deliver_pending(ctx.db, channel_for(ctx.config), max(at, clock_now(ctx.config.tz)))
    click.echo(handled.reply)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True, help="Do not run the daily schedule in this process.")
@common_options
def serve(ctx: Context, host: str, port: int, no_scheduler: bool) -> None:
    """Serve the bot: /wechat callback, /sim, secretary views, the schedule."""
    from bot import create_app
    from bot.serving.server import serve as run_server

    settings = {"GRIDWATCH": ctx.config, "DB_PATH": ctx.db_path}
    if no_scheduler:  # else GRIDWATCH_SCHEDULER decides (on by default)
        settings["SCHEDULER"] = False
    app = create_app(settings)
    click.echo(f"gridwatch on http://{host}:{port} ({ctx.config.channel.kind} channel)")
    run_server(app, host, port)


@cli.command()
@click.option(
    "--db",
    "db_path",
    default="gridwatch-demo.db",
    show_default=True,
    metavar="PATH",
    help="The demo database, replaced on every run (GRIDWATCH_DB is not used).",
)
@click.option("--config", "config_path", metavar="FILE", help="TOML settings (GRIDWATCH_CONFIG).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--at",
    "at_text",
    metavar="TIME",
    help="Start the simulator clock at TIME instead of now (the live scheduler stays off).",
)
@click.option(
    "--days", default=3, show_default=True, type=click.IntRange(0, 10), help="Days of history."
)
@click.option("--no-scheduler", is_flag=True, help="Do not run the daily schedule live.")
def demo(
    db_path: str,
    config_path: str | None,
    host: str,
    port: int,
    at_text: str | None,
    days: int,
    no_scheduler: bool,
) -> None:
    """Fresh demo data (the example roster dated around today), console channel, /sim."""
    import dataclasses
    import os

    from bot import create_app
    from bot.cli.demo import DemoError, build_demo
    from bot.config import ChannelSettings
    from bot.serving.server import serve as run_server

    try:
        config = load_config(config_path)
    except ConfigError as error:
        raise click.ClickException(f"config: {error}") from None
    public_url = os.environ.get("GRIDWATCH_PUBLIC_URL") or f"http://{host}:{port}"
    config = dataclasses.replace(
        config, channel=ChannelSettings(), public_url=public_url.rstrip("/"), public_url_set=True
    )
    at = at_option(at_text, config.tz)
    try:
        summary = build_demo(Path(db_path), config, at, days=days)
    except DemoError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"demo data in {db_path}: {summary['subjects']} subjects, {summary['people']} people,"
        f" {summary['messages']} messages and {summary['reports']} reports played"
    )
    click.echo(f"chat simulator: {public_url}/sim")
    click.echo(f"secretary view: {summary['link']}")
    # a clock set by --at runs ahead of or behind real time: the simulator drives the schedule
    live = not no_scheduler and not at_text
    app = create_app({"GRIDWATCH": config, "DB_PATH": db_path, "SCHEDULER": live})
    run_server(app, host, port)


@cli.command()
@click.argument("person")
@common_options
def invite(ctx: Context, person: str) -> None:
    """Print a one-time binding code for PERSON (name, phone or id) to send as 绑定 123456."""
    from storage.invites import create_invite

    rows = list(
        ctx.db.query(
            "SELECT * FROM people WHERE active AND (name = ? OR phone = ? OR CAST(id AS TEXT) = ?)",
            [person, person, person],
        )
    )
    if not rows:
        raise click.ClickException(f"no person {person!r} in the roster")
    if len(rows) > 1:
        raise click.ClickException(
            f"{len(rows)} people match {person!r}; give the phone number instead"
        )
    code = create_invite(ctx.db, rows[0]["id"], clock_now(ctx.config.tz))
    click.echo(f"{rows[0]['name']} 的绑定码：{code}（72小时内有效，发送“绑定 {code}”）")


@cli.command()
@click.argument("text", required=False)
@click.option("--names", metavar="A,B,C", help="The member's subjects, comma-separated.")
@click.option("--at", "at_text", metavar="TIME", help="The message time (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the parse result as JSON.")
@click.option("--batch", type=click.File("r", encoding="utf-8"), help="A .jsonl file of inputs.")
@click.option("--config", "config_path", metavar="FILE", help="TOML settings (GRIDWATCH_CONFIG).")
@click.option("--db", "db_path", metavar="PATH", help="Accepted for symmetry; parse uses no data.")
def parse(
    text: str | None,
    names: str | None,
    at_text: str | None,
    as_json: bool,
    batch: Any,
    config_path: str | None,
    db_path: str | None,
) -> None:
    """Parse a member's reply against their subjects' names (no database needed)."""
    from handlers.parser import parse_reply

    try:
        config = load_config(config_path)
    except ConfigError as error:
        raise click.ClickException(f"config: {error}") from None
    if batch is not None:
        _parse_batch(batch, config.fever_threshold, config.tz)
        return
    if text is None:
        raise click.UsageError("give TEXT to parse, or --batch FILE.jsonl")
    at = at_option(at_text, config.tz)
    name_list = [n.strip() for n in (names or "").replace("，", ",").split(",") if n.strip()]
    result = parse_reply(text, name_list, at, fever_threshold=config.fever_threshold)
    if as_json:
        print_json(result.to_json())
        return
    click.echo(f"slot: {result.slot} ({result.slot_source}), date {result.date}")
    for entry in result.entries:
        temperature = f" {entry.temperature}" if entry.temperature is not None else ""
        symptoms = f" [{'、'.join(entry.symptoms)}]" if entry.symptoms else ""
        typed = f" (typed {entry.typed})" if entry.typed != entry.name else ""
        click.echo(f"  {entry.name}{typed}: {entry.status}{temperature}{symptoms}")
    for problem in result.problems:
        candidates = f" → {'、'.join(problem.candidates)}" if problem.candidates else ""
        click.echo(f"  ? {problem.reason}: {problem.text}{candidates}")


def _parse_batch(lines: Any, fever_threshold: float, tz: Any) -> None:
    """One JSON line out per line in, written in blocks: click.echo per line cost a sixth
    of the time of a whole parse (DESIGN §9 budgets parse --batch at 20,000 lines/s)."""
    from handlers.parser import parse_batch_line

    encode = json.JSONEncoder(ensure_ascii=False).encode  # as print_json writes it
    out = sys.stdout
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(encode(parse_batch_line(line, fever_threshold=fever_threshold, tz=tz)))
            if len(block) == 1000:
                out.write("\n".join(block) + "\n")
                block.clear()
    if block:
        out.write("\n".join(block) + "\n")
    out.flush()


from bot.cli.routine import digest, purge, review, tick  # noqa: E402

cli.add_command(tick)
cli.add_command(digest)
cli.add_command(purge)
cli.add_command(review)

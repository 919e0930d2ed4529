"""`gridwatch tick` and `gridwatch digest`: the daily routine from the command line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from bot.cli.options import common_options, day_option, print_json, time_option
from bot.context import Context

TICK_AHEAD = dt.timedelta(minutes=1)  # clocks of two machines may differ a little


@click.command()
@click.option("--at", "at_text", metavar="TIME", help="Run jobs due up to TIME (default: now).")
@common_options
def tick(ctx: Context, at_text: str | None) -> None:
    """Run every scheduled job due up to TIME that has not run yet."""
    from bot.clock import now as clock_now
    from schedules.runner import live_since, run_due

    at = time_option(at_text, ctx)
    real = clock_now(ctx.config.tz)
    since = live_since(ctx.db)
    if since is not None and at > real + TICK_AHEAD:
        raise click.ClickException(
            f"--at {at.isoformat(timespec='minutes')} is later than the clock "
            f"({real.isoformat(timespec='minutes')}): a server has run this database's schedule "
            f"live since {since}, and jobs run early here would be sent early for real. "
            "Rehearse on a copy of the database instead."
        )
    runs = run_due(ctx.db, ctx.config, at, clock=real)
    if not runs:
        click.echo("nothing due")
    for run in runs:
        click.echo(
            f"{run.outcome:<7} {run.due.isoformat(timespec='minutes')} {run.job}: {run.detail}"
        )


@click.command()
@click.option("--unit", metavar="CODE", required=True, help="A village, or a unit above it.")
@click.option("--date", "date_text", metavar="D", help="The date (default: today).")
@click.option("--report", type=click.IntRange(1, 2), help="Report 1 or 2 (default: as of now).")
@click.option("--json", "as_json", is_flag=True, help="Print the digest JSON.")
@common_options
def digest(
    ctx: Context, unit: str, date_text: str | None, report: int | None, as_json: bool
) -> None:
    """A unit's digest: the text the secretary receives, or its JSON. A report the
    schedule sent is shown as it was sent."""
    from bot.links import view_link
    from schedules.digest import UnknownUnit, build_digest, digest_text
    from storage.digests import sent_digest

    day = day_option(date_text, ctx)
    now = time_option(None, ctx)
    found = sent_digest(ctx.db, unit, day, report) if report is not None else None
    try:
        found = found or build_digest(ctx.db, ctx.config, unit, day, report, now)
    except UnknownUnit:
        raise click.BadParameter(f"unknown unit {unit!r}", param_hint="--unit") from None
    if as_json:
        print_json(found)
    else:
        click.echo(digest_text(found, view_link(ctx.db, ctx.config, unit, day, now)))


@click.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be erased.")
@click.option("--at", "at_text", metavar="TIME", help="As of TIME (default: now).")
@common_options
def purge(ctx: Context, dry_run: bool, at_text: str | None) -> None:
    """Erase personal data past retention_days (DESIGN §6): subjects' phones and addresses,
    the text of messages about them; counts, reports, digests and the audit trail stay.
    The 00:05 release job does the same every day."""
    from bot.clock import now as clock_now
    from storage.purge import purge as erase

    at = time_option(at_text, ctx)
    real = clock_now(ctx.config.tz)
    if at > real + TICK_AHEAD and not dry_run:
        raise click.ClickException(
            f"--at {at.isoformat(timespec='minutes')} is later than the clock "
            f"({real.isoformat(timespec='minutes')}): personal data is erased only as of now "
            "(--dry-run shows what a later day would erase)"
        )
    today = at.date()
    done = erase(ctx.db, today, ctx.config.retention_days, dry_run=dry_run)
    click.echo(done.summary(dry_run))
    if dry_run and done.names:
        click.echo("subjects: " + "、".join(done.names))


@click.command()
@click.option("--unit", metavar="CODE", required=True, help="A village, or a unit above it.")
@click.option("--week", "week_text", metavar="YYYY-Www", help="The ISO week (default: last week).")
@click.option("--json", "as_json", is_flag=True, help="Print the pack JSON.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "xlsx"]), help="xlsx needs --out."
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the workbook to FILE.")
@click.option("--at", "at_text", metavar="TIME", help="As of TIME (default: now).")
@common_options
def review(
    ctx: Context,
    unit: str,
    week_text: str | None,
    as_json: bool,
    fmt: str | None,
    out: Path | None,
    at_text: str | None,
) -> None:
    """The weekly pack (每周会商, DESIGN §11): subjects, each member's record, problems and the
    请核实 flags of a unit's week."""
    from bot.links import review_link
    from schedules.digest import UnknownUnit
    from schedules.review import BadWeek, build_review, monday_of, review_text, week_start
    from storage.review_files import review_xlsx

    now = time_option(at_text, ctx)
    try:
        start = week_start(week_text) if week_text else monday_of(now.date()) - dt.timedelta(7)
    except BadWeek as error:
        raise click.BadParameter(str(error), param_hint="--week") from None
    try:
        pack = build_review(ctx.db, ctx.config, unit, start, now)
    except UnknownUnit:
        raise click.BadParameter(f"unknown unit {unit!r}", param_hint="--unit") from None
    fmt = fmt or ("json" if as_json else "text")
    if fmt == "xlsx":
        if out is None:
            raise click.BadParameter("xlsx needs --out FILE.xlsx", param_hint="--out")
        try:
            out.write_bytes(review_xlsx(pack))
        except OSError as error:
            raise click.ClickException(f"cannot write {out}: {error.strerror or error}") from None
        click.echo(f"written {out}")
    elif fmt == "json":
        print_json(pack)
    else:
        click.echo(review_text(pack, review_link(ctx.db, ctx.config, unit, start, now)))

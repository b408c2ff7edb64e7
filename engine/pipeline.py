"""`campaign send NAME`: snapshot the audience into the ledger, then deliver it in batches.

Only orchestration lives here: the audience (engine.audience), the ledger (engine.ledger),
rendering (engine.emails), messages (engine.outgoing) and SMTP (engine.transport) do the
work. Re-running resumes the unfinished run; nothing is sent twice (see engine.ledger).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Select, select

from engine import ledger, senders
from engine.audience import Exclusions, recipients
from engine.dkim import DkimSigner
from engine.emails import BATCH_SIZE, CampaignEmails
from engine.errors import EngineError, SettingsError
from engine.message import HeaderError
from engine.outgoing import MessageMaker
from engine.render import RenderError
from engine.schema import customers
from engine.suppress import suppress_address
from engine.transport import Outcome, Outgoing, SmtpPool, SmtpSettings
from engine.workspace import Workspace

RECORD_EVERY = 0.25        # seconds between ledger commits of outcomes
FIRST_BATCH = 50           # contexts built before the first message; then BATCH_SIZE at a time


@dataclass(frozen=True)
class Audience:
    """What the confirmation question shows before a new run starts."""

    campaign: str
    recipients: int
    excluded: dict[str, int]


@dataclass
class SendReport:
    """What a `campaign send` did."""

    run: ledger.Run | None = None
    resumed: bool = False
    became_unknown: int = 0
    delivered: int = 0
    failed: int = 0
    deferred: int = 0
    unknown: int = 0
    stopped: str | None = None
    states: dict[str, int] = field(default_factory=dict)
    cancelled: bool = False


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def required_settings(workspace: Workspace) -> SmtpSettings:
    """What a real send needs: SMTP, a signing key and the shop's postal address."""
    settings = workspace.settings
    if not settings.smtp_url:
        raise SettingsError("CAMPAIGN_SMTP_URL is not set",
                            hint="set it, e.g. smtp://user:password@mail.example.com:587, or "
                                 "try 'campaign send NAME --dry-run' first")
    if not settings.secret_key:
        raise SettingsError("CAMPAIGN_SECRET_KEY is not set; unsubscribe links and coupon codes "
                            "need it", hint="set it to a long random text and keep it secret "
                                            "(e.g. python -c 'import secrets; "
                                            "print(secrets.token_urlsafe(32))')")
    if not settings.shop.base_url.startswith("https://"):
        raise SettingsError(f"base_url {settings.shop.base_url!r} is not an https:// address; "
                            "one-click unsubscribe links need https",
                            path=settings.root / "campaign.toml",
                            hint='set base_url = "https://..." under [shop]')
    if not settings.shop.postal_address.strip():
        raise SettingsError("the shop's postal address is required in every email",
                            path=settings.root / "campaign.toml",
                            hint="add postal_address = \"...\" under [shop]")
    return SmtpSettings.from_url(settings.smtp_url)


def send(workspace: Workspace, engine: Engine, name: str, *,
         confirm: Callable[[Audience], bool], limit: int | None = None,
         retry_failed: bool = False, resend_unknown: bool = False, again: bool = False,
         evaluated_at: datetime | None = None,
         progress: Callable[[int, int, int], None] | None = None,
         now: Callable[[], datetime] = _utcnow) -> SendReport:
    """Resume the campaign's unfinished run, or start one after `confirm`; deliver it.

    A new run picks its audience as of `evaluated_at` (default: now). A campaign whose last
    run finished is not sent again unless `again` is given.
    """
    smtp = required_settings(workspace)
    sender = senders.register(engine, now())
    try:
        return _send(workspace, engine, name, smtp, sender, confirm, limit, retry_failed,
                     resend_unknown, again, evaluated_at, progress, now)
    finally:
        senders.sign_off(engine, sender, now())


def _send(workspace: Workspace, engine: Engine, name: str, smtp: SmtpSettings,
          sender: senders.Sender, confirm: Callable[[Audience], bool], limit: int | None,
          retry_failed: bool, resend_unknown: bool, again: bool, evaluated_at: datetime | None,
          progress: Callable[[int, int, int], None] | None,
          now: Callable[[], datetime]) -> SendReport:
    report = SendReport()
    with engine.begin() as connection:
        run = ledger.open_run(connection, name)
        latest = ledger.latest_run(connection, name)
        if run is None and (retry_failed or resend_unknown):
            run = latest
        elif run is None and latest is not None and not again:
            raise EngineError(
                f"campaign '{name}' was sent completely in run {latest.id} "
                f"(finished {latest.finished_at:%Y-%m-%d %H:%M} UTC); nothing is left to send",
                hint="see 'campaign runs'; to send it once more to its whole audience, pass "
                     "--again")
        if run is not None:
            report.resumed = True
            report.became_unknown = ledger.expire(connection, now(), run, sender.alone)
            requeued = ["deferred"] + ["failed"] * retry_failed + ["unknown"] * resend_unknown
            ledger.move(connection, run, requeued, "queued", now())
            ledger.close(connection, run, "running", now())
    if run is None:
        run = _start_run(workspace, engine, name, confirm, evaluated_at or now(), now())
        if run is None:
            report.cancelled = True
            return report
    report.run = run
    deliver(workspace, engine, run, smtp, sender, report, limit=limit, progress=progress,
            now=now)
    with engine.begin() as connection:
        report.states = conclude(connection, run, report.stopped, now())
    return report


def conclude(connection: Connection, run: ledger.Run, stopped: str | None,
             now: datetime) -> dict[str, int]:
    """Close the run as stopped (with why) or, when nothing is left to do, finished; its
    deliveries by state."""
    states = ledger.counts(connection, run.id)
    if stopped:
        ledger.close(connection, run, "stopped", now, stopped)
    elif not {"queued", "sending", "deferred", "unknown"} & set(states):
        ledger.close(connection, run, "finished", now)
    return states


def _start_run(workspace: Workspace, engine: Engine, name: str,
               confirm: Callable[[Audience], bool], evaluated_at: datetime,
               started: datetime) -> ledger.Run | None:
    settings = workspace.settings
    with engine.connect() as connection:
        emails = CampaignEmails(workspace, connection, name, evaluated_at)
        if emails.campaign.trigger is not None:
            raise EngineError(
                f"campaign '{name}' is a lifecycle campaign ('trigger:' in its file): the "
                "worker sends it to each customer when their event falls due",
                hint="run 'campaign worker' (see docs/scheduling.md); 'campaign send NAME "
                     "--dry-run' shows its segment")
        exclusions = Exclusions()
        count = sum(1 for _ in recipients(connection, emails.audience_query(),
                                          settings.sending, evaluated_at, exclusions))
    if not confirm(Audience(name, count, exclusions.as_dict())):
        return None
    with engine.begin() as connection, engine.connect() as members:
        return snapshot(workspace, connection, members, name, evaluated_at, started)


def snapshot(workspace: Workspace, connection: Connection, members: Connection, name: str,
             evaluated_at: datetime, started: datetime, *, occurrence: str | None = None,
             among: Select | None = None) -> ledger.Run:
    """A new run of campaign `name` in the caller's transaction, every member of its audience
    as of `evaluated_at` (and in `among`, ids, when given) queued; members are read on a
    second connection, `members`, as a stream."""
    settings = workspace.settings
    emails = CampaignEmails(workspace, members, name, evaluated_at)
    audience = emails.audience_query()
    if among is not None:
        audience = select(customers.c.id).where(customers.c.id.in_(audience),
                                                customers.c.id.in_(among))
    maker = MessageMaker(settings, name, emails.campaign.from_address)
    left_out = Exclusions()
    return ledger.create_run(
        connection, name, evaluated_at, started,
        recipients(members, audience, settings.sending, evaluated_at, left_out),
        lambda run_id, customer_id: maker.message_id(str(run_id), customer_id),
        left_out.as_dict, occurrence)


def deliver(workspace: Workspace, engine: Engine, run: ledger.Run, smtp: SmtpSettings,
            sender: senders.Sender, report: SendReport, *, limit: int | None = None,
            progress: Callable[[int, int, int], None] | None = None,
            halt: threading.Event | None = None,
            now: Callable[[], datetime] = _utcnow) -> None:
    """Deliver the run's due queued deliveries that `sender` can lease, until none is left,
    `limit` were handed over, too many failed in a row, or `halt` is set (the messages
    already with the SMTP server still finish and are recorded). With nothing to lease now
    (all held for later, or taken by other senders) it returns at once, without reading the
    campaign or connecting to SMTP."""
    with engine.connect() as connection:
        if not ledger.any_leasable(connection, run, now()):
            return
    settings = workspace.settings
    sending = settings.sending
    handed: set[int] = set()
    pending: list[ledger.Result] = []
    with engine.connect() as reader:
        emails = CampaignEmails(workspace, reader, run.campaign, run.evaluated_at)
        maker = MessageMaker(settings, run.campaign, emails.campaign.from_address,
                             DkimSigner.from_settings(settings))
        with engine.begin() as connection:
            total = ledger.counts(connection, run.id).get("queued", 0)
        total = min(total, limit) if limit else total
        pool = SmtpPool(smtp, connections=sending.connections, rate=sending.rate,
                        per_connection=sending.per_connection, timeout=sending.timeout)
        try:
            with pool:
                pool.check()
                stop = threading.Event()
                halted = halt or threading.Event()
                messages = _messages(engine, emails, maker, run, sender, total, handed, pending,
                                     now, lambda: stop.is_set() or halted.is_set(), report,
                                     claim=2 * sending.connections)
                failures_in_row = 0
                last_commit = last_beat = time.monotonic()
                for outcome in pool.send(messages):
                    result = _result(outcome)
                    pending.append(result)
                    sender.sent += result.state == "sent"
                    failures_in_row = failures_in_row + 1 if outcome.status != "sent" else 0
                    _count(report, result.state)
                    if outcome.unknown_user:
                        _suppress(engine, outcome, now())
                    if time.monotonic() - last_commit > RECORD_EVERY:
                        _record(engine, pending, handed, now())
                        last_commit = time.monotonic()
                        if last_commit - last_beat > sender.lease.total_seconds() / 4:
                            senders.heartbeat(engine, sender, now())
                            last_beat = last_commit
                        if progress:
                            progress(report.delivered, report.failed + report.deferred, total)
                    if failures_in_row >= sending.stop_after_failures and not stop.is_set():
                        report.stopped = (f"stopped after {failures_in_row} failed messages in "
                                          f"a row (last: {outcome.detail})")
                        stop.set()  # hand over no more; the ones handed over still finish
        finally:
            _settle(engine, sender, pending, handed, now())
    if progress:
        progress(report.delivered, report.failed + report.deferred, total)


def _settle(engine: Engine, sender: senders.Sender, pending: list[ledger.Result],
            handed: set[int], moment: datetime) -> None:
    """Record every outcome received; messages handed to SMTP without one become unknown,
    deliveries claimed but never handed over go back to the queue."""
    _record(engine, pending, handed, moment)
    with engine.begin() as connection:
        ledger.record(connection, [ledger.Result(key, "unknown", "the send stopped while this "
                                                 "message was with the SMTP server")
                                   for key in sorted(handed)], moment)
        ledger.release(connection, sender.id, moment)
    handed.clear()


def _messages(engine: Engine, emails: CampaignEmails, maker: MessageMaker, run: ledger.Run,
              sender: senders.Sender, total: int, handed: set[int],
              pending: list[ledger.Result], now: Callable[[], datetime],
              stopped: Callable[[], bool], report: SendReport,
              claim: int) -> Iterator[Outgoing]:
    """Lease, claim, render and build messages as the pool asks for them, until `stopped()`.

    Contexts are built for a leased batch of deliveries at a time; the deliveries are claimed
    in chunks only as large as what the pool keeps in flight, after recording the outcomes
    received so far, so a crash leaves few rows `sending`.
    """
    produced = 0
    while produced < total and not stopped():
        size = FIRST_BATCH if produced == 0 else BATCH_SIZE  # the first messages go out soon
        moment = now()
        with engine.begin() as connection:
            batch = ledger.lease(connection, run, sender.id, min(size, total - produced),
                                 moment, sender.lease_end(moment))
        if not batch:
            return
        produced += len(batch)
        contexts = {c["customer"].id: c for c in emails.builder.build(
            [item.customer_id for item in batch])}
        if emails.builder.coupons:
            with engine.begin() as connection:
                emails.builder.coupons.issue(connection, {
                    key: c["coupon"] for key, c in contexts.items()}, run.evaluated_at)
        for start in range(0, len(batch), claim):
            if stopped():
                return
            chunk = batch[start:start + claim]
            with engine.begin() as connection:  # one commit: the outcomes so far, the claim
                ledger.record(connection, pending, now())
                claimed = ledger.claim(connection, chunk, sender.id, now())
            _recorded(pending, handed)
            sent_at = now()
            for item in chunk:
                if item.id not in claimed:   # its lease ran out and another sender took it
                    continue
                context = contexts.get(item.customer_id)
                try:
                    if context is None:
                        raise EngineError("the customer no longer exists")
                    email = emails.renderer.render(context)
                    data, smtputf8 = maker.make(context, email, item.message_id, sent_at,
                                                delivery_id=item.id)
                except (RenderError, HeaderError, EngineError) as exc:
                    pending.append(ledger.Result(item.id, "failed", str(exc)))
                    _count(report, "failed")
                    continue
                if stopped():
                    return
                handed.add(item.id)
                yield Outgoing(item.id, maker.from_address, item.email, data, smtputf8)


def _result(outcome: Outcome) -> ledger.Result:
    detail = f"{outcome.code} {outcome.detail}" if outcome.code else outcome.detail
    state = outcome.status
    if state == "deferred" and outcome.detail.startswith("unknown: "):
        state = "unknown"
    return ledger.Result(outcome.key, state, detail.strip())


def _record(engine: Engine, pending: list[ledger.Result], handed: set[int],
            moment: datetime) -> None:
    if pending:
        with engine.begin() as connection:
            ledger.record(connection, pending, moment)
        _recorded(pending, handed)


def _recorded(pending: list[ledger.Result], handed: set[int]) -> None:
    """Forget the pending outcomes once committed: those deliveries are no longer in doubt."""
    for result in pending:
        handed.discard(result.id)
    pending.clear()


def _count(report: SendReport, status: str) -> None:
    if status == "sent":
        report.delivered += 1
    elif status == "failed":
        report.failed += 1
    elif status == "unknown":
        report.unknown += 1
    else:
        report.deferred += 1


def _suppress(engine: Engine, outcome: Outcome, moment: datetime) -> None:
    with engine.begin() as connection:
        email = ledger.delivery_email(connection, outcome.key)
        suppress_address(connection, email, "bounced", f"{outcome.code} {outcome.detail}",
                         moment)


def test_send(workspace: Workspace, engine: Engine, name: str, to: str, who: str | None,
              now: datetime) -> Outcome:
    """Send one customer's email of the campaign to `to`; nothing is recorded."""
    smtp = required_settings(workspace)
    settings = workspace.settings
    with engine.connect() as connection:
        emails = CampaignEmails(workspace, connection, name, now)
        ids = [emails.find_customer(who)] if who else emails.audience(limit=1)
        if not ids:
            raise EngineError(f"the audience of campaign '{name}' is empty",
                              hint="pick a customer with --as EMAIL|ID")
        context = emails.builder.build(ids)[0]
        email = emails.renderer.render(context)
    maker = MessageMaker(settings, name, emails.campaign.from_address,
                         DkimSigner.from_settings(settings))
    test = {**context, "customer": replace(context["customer"], email=to)}
    data, smtputf8 = maker.make(test, email, maker.message_id(f"test{now:%s}", ids[0]), now)
    with SmtpPool(smtp, connections=1, rate=0, timeout=settings.sending.timeout) as pool:
        pool.check()
        return next(iter(pool.send([Outgoing(0, maker.from_address, to, data, smtputf8)])))

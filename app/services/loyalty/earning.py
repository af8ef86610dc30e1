"""Points from orders: earned once when an order reaches the earning status, pending through the
return window, voided by a refund inside it, posted after it, reversed proportionally after that.

One `loyalty_order_earns` row per order (its primary key) makes a second earn impossible, and the
entries' idempotency keys (`order:<id>:earn`, `order:<id>:reverse:<points>`) make every ledger
effect happen once however often a loader, a retry or a resumed import reports the same order.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.base import new_id
from app.models.loyalty import LoyaltyAccount, LoyaltyOrderEarn
from app.schemas.loyalty import EarningStatus, Rounding
from app.services.loyalty import tiers
from app.services.loyalty.ledger import (
    NewLot,
    Posting,
    claw_back,
    credit,
    entry_by_key,
    lock_account,
)
from app.services.loyalty.lots import expiry_for
from app.services.loyalty.program import Program, current_program, round_points

_RANKS: dict[EarningStatus, list[str]] = {
    EarningStatus.paid: ["paid", "shipped", "completed", "refunding", "partially_refunded"],
    EarningStatus.shipped: ["shipped", "completed", "refunding", "partially_refunded"],
    EarningStatus.completed: ["completed", "refunding", "partially_refunded"],
}
_ROUNDING_ADD = {Rounding.floor: 0, Rounding.half_up: 5000, Rounding.ceil: 9999}

# What the buyer kept: nothing once refunded or closed, else paid minus refunded.
_NET = (
    "CASE WHEN o.status IN ('refunded', 'closed') THEN 0"
    " ELSE GREATEST(o.paid_fen - o.refund_fen, 0) END"
)
# The return window runs from completion; earning on `completed` without a completion time in
# the data starts it now; earning on `paid`/`shipped` waits for the completion.
_WINDOW = "make_interval(days => CAST(:window AS integer))"
_POST_AT = (
    f"CASE WHEN o.completed_at IS NOT NULL THEN o.completed_at + {_WINDOW}"
    f" WHEN CAST(:window_from_now AS boolean) THEN CAST(:now AS timestamptz) + {_WINDOW} END"
)
# A later status counts as having reached `completed` only if the order really completed.
_REACHED = (
    "o.status = ANY(CAST(:reached AS text[]))"
    " AND (o.status = 'completed' OR o.completed_at IS NOT NULL"
    " OR NOT CAST(:needs_completion AS boolean))"
)

# Every statement starts from the ids and looks each row up by its primary key (a LATERAL
# subquery with OFFSET 0 is never flattened into a join), so a batch costs the same whether the
# tenant has a thousand orders or ten million, even while statistics lag behind a large load.
_ORDER = (
    "CROSS JOIN LATERAL (SELECT id, customer_id, status, paid_fen, refund_fen, completed_at"
    " FROM orders WHERE tenant_id = CAST(:tenant_id AS uuid) AND id = i.id OFFSET 0) o"
)
_EARN = (
    "CROSS JOIN LATERAL (SELECT * FROM loyalty_order_earns"
    " WHERE tenant_id = CAST(:tenant_id AS uuid) AND order_id = i.id OFFSET 0) e"
)

_START = f"""
INSERT INTO loyalty_order_earns (tenant_id, order_id, customer_id, status, points, base_fen,
    net_fen, reversed_points, program_version, earned_at, post_at, updated_at)
SELECT CAST(:tenant_id AS uuid), o.id, o.customer_id, 'pending',
       floor((n.net::numeric * CAST(:per_yuan AS bigint) * ({{multiplier}})
              + CAST(:rounding AS integer)) / 10000)::bigint,
       n.net, n.net, 0, CAST(:version AS integer), :now, {_POST_AT}, :now
FROM unnest(CAST(:ids AS uuid[])) AS i(id)
{_ORDER}
CROSS JOIN LATERAL (SELECT {_NET} AS net) n
LEFT JOIN LATERAL (SELECT tier FROM loyalty_accounts
                   WHERE tenant_id = CAST(:tenant_id AS uuid) AND customer_id = o.customer_id
                   OFFSET 0) a ON true
WHERE o.customer_id IS NOT NULL AND n.net > 0 AND {_REACHED}
ON CONFLICT DO NOTHING
RETURNING order_id, customer_id
"""

# Inside the window: a full refund voids, a partial one scales the points down. The rows to
# change are found by key first; the UPDATE then touches only those.
_PENDING_CHANGED = f"""
SELECT e.order_id
FROM unnest(CAST(:ids AS uuid[])) AS i(id)
{_EARN}
{_ORDER}
WHERE e.status = 'pending'
  AND ({_NET} <> e.net_fen OR (e.post_at IS NULL AND ({_POST_AT}) IS NOT NULL))
"""

_UPDATE_PENDING = f"""
UPDATE loyalty_order_earns e SET
    status = CASE WHEN {_NET} = 0 THEN 'voided' ELSE e.status END,
    voided_at = CASE WHEN {_NET} = 0 THEN CAST(:now AS timestamptz) ELSE e.voided_at END,
    points = CASE WHEN {_NET} > 0 AND {_NET} < e.base_fen THEN e.points * {_NET} / e.base_fen
                  ELSE e.points END,
    base_fen = CASE WHEN {_NET} > 0 AND {_NET} < e.base_fen THEN {_NET} ELSE e.base_fen END,
    net_fen = {_NET},
    post_at = COALESCE(e.post_at, {_POST_AT}),
    updated_at = :now
FROM unnest(CAST(:ids AS uuid[])) AS i(id)
{_ORDER}
WHERE e.tenant_id = :tenant_id AND e.order_id = i.id AND e.status = 'pending'
RETURNING e.customer_id
"""

_REFUNDED_AFTER_POSTING = f"""
SELECT e.customer_id, e.order_id, {_NET} AS net
FROM unnest(CAST(:ids AS uuid[])) AS i(id)
{_EARN}
{_ORDER}
WHERE e.status = 'posted' AND LEAST({_NET}, e.base_fen) < e.net_fen
"""

# Accounts are locked one by one in the order of the (sorted) list: one global order, so
# concurrent loaders never deadlock on accounts.
_LOCK_ACCOUNTS = """
SELECT a.customer_id
FROM unnest(CAST(:customers AS uuid[])) AS c(id)
CROSS JOIN LATERAL (SELECT customer_id FROM loyalty_accounts
                    WHERE tenant_id = CAST(:tenant_id AS uuid) AND customer_id = c.id
                    FOR UPDATE) a
"""


def _multiplier(program: Program) -> tuple[str, dict[str, object]]:
    """SQL for the earning multiplier of the account's current tier (the entry tier's if none)."""
    tiers_ = program.settings.tiers
    params: dict[str, object] = {"m_default": tiers_[0].multiplier_percent}
    whens = []
    for n, tier in enumerate(tiers_):
        params[f"m_code{n}"], params[f"m_pct{n}"] = tier.code, tier.multiplier_percent
        whens.append(f"WHEN a.tier = CAST(:m_code{n} AS text) THEN CAST(:m_pct{n} AS integer)")
    return f"CASE {' '.join(whens)} ELSE CAST(:m_default AS integer) END", params


def _params(
    program: Program, tenant_id: uuid.UUID, ids: list[uuid.UUID], now: datetime
) -> dict[str, object]:
    settings = program.settings
    return {
        "tenant_id": tenant_id,
        "ids": ids,
        "now": now,
        "window": settings.return_window_days,
        "window_from_now": settings.earning_status is EarningStatus.completed,
        "reached": _RANKS[settings.earning_status],
        "needs_completion": settings.earning_status is EarningStatus.completed,
    }


async def orders_changed(
    session: AsyncSession, tenant_id: uuid.UUID, order_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Bring the loyalty effects of these orders up to their current state (idempotent).

    Set-based for what an import mostly does (new pending earns, refunds inside the window,
    tiers); only refunds after posting write ledger entries, one account at a time.
    """
    ids = sorted(set(order_ids))
    if not ids:
        return
    program = await current_program(session, tenant_id, now)
    params = _params(program, tenant_id, ids, now)
    multiplier, multiplier_params = _multiplier(program)
    earning = {
        **params,
        **multiplier_params,
        "per_yuan": program.settings.points_per_yuan,
        "rounding": _ROUNDING_ADD[program.settings.rounding],
        "version": program.version,
    }
    started = (await session.execute(text(_START.format(multiplier=multiplier)), earning)).all()
    touched = {row.customer_id for row in started}
    # An earn started just now is pending with the order's current amounts: only the other
    # orders can have a refund to apply (most of a first import skips these two look-ups).
    new = {row.order_id for row in started}
    params["ids"] = [i for i in ids if i not in new]
    refunded: list[Any] = []
    if params["ids"]:
        changed = list(await session.scalars(text(_PENDING_CHANGED), params))
        if changed:
            touched.update(
                await session.scalars(text(_UPDATE_PENDING), {**params, "ids": sorted(changed)})
            )
        refunded = list((await session.execute(text(_REFUNDED_AFTER_POSTING), params)).all())
    touched.update(row.customer_id for row in refunded)
    if not touched:
        return
    customers = sorted(touched)
    # Accounts open on their first posting (a customer's first import writes no account row);
    # those that exist are locked in one global order and have their tier recomputed.
    lock = {"tenant_id": tenant_id, "customers": customers}
    await session.execute(text(_LOCK_ACCOUNTS), lock)
    by_customer: dict[uuid.UUID, dict[uuid.UUID, int]] = defaultdict(dict)
    for row in refunded:
        by_customer[row.customer_id][row.order_id] = row.net
    for customer_id in sorted(by_customer):
        account = await lock_account(session, tenant_id, customer_id, now)
        nets = by_customer[customer_id]
        for earn in (await _earns(session, tenant_id, sorted(nets))).values():
            if earn.status == "posted":
                await _reverse_refunds(session, account, program, earn, nets[earn.order_id], now)
    await session.flush()
    await tiers.recompute_many(session, tenant_id, program, customers, now, "order")


async def _earns(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    order_ids: Sequence[uuid.UUID],
    skip_locked: bool = False,
) -> dict[uuid.UUID, LoyaltyOrderEarn]:
    rows = await session.scalars(
        select(LoyaltyOrderEarn)
        .where(LoyaltyOrderEarn.tenant_id == tenant_id, LoyaltyOrderEarn.order_id.in_(order_ids))
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return {row.order_id: row for row in rows}


async def _reverse_refunds(
    session: AsyncSession,
    account: LoyaltyAccount,
    program: Program,
    earn: LoyaltyOrderEarn,
    order_net: int,
    now: datetime,
) -> None:
    """After posting: take back the refunded share of the points, once per refunded amount."""
    net = min(order_net, earn.base_fen)
    if net >= earn.net_fen:
        return
    refunded = earn.base_fen - net
    target = (
        earn.points
        if net == 0
        else round_points(Fraction(earn.points * refunded, earn.base_fen), Rounding.half_up)
    )
    earn.net_fen, earn.updated_at = net, now
    due = target - earn.reversed_points
    if due > 0:
        key = f"order:{earn.order_id}:reverse:{target}"
        if await entry_by_key(session, account.tenant_id, key) is None:
            posting = Posting(
                "reverse",
                "order",
                "system",
                key,
                f"refund of {refunded} fen of {earn.base_fen} fen",
                source_id=earn.order_id,
                related_entry_id=earn.posted_entry_id,
            )
            await claw_back(
                session,
                account,
                posting,
                due,
                program.settings.negative_policy,
                now,
                prefer_entry=earn.posted_entry_id,
                takes_back_earning=True,
            )
        earn.reversed_points = target
    await session.flush()


_DUE = """
SELECT order_id, customer_id, points FROM loyalty_order_earns
WHERE tenant_id = :tenant_id AND status = 'pending' AND post_at <= :now
ORDER BY customer_id, order_id
LIMIT :limit
FOR UPDATE SKIP LOCKED
"""

_OPEN_ACCOUNTS = """
INSERT INTO loyalty_accounts (tenant_id, customer_id, balance, lifetime_points, created_at,
    updated_at)
SELECT :tenant_id, c, 0, 0, :now, :now FROM unnest(CAST(:customers AS uuid[])) AS c
ON CONFLICT DO NOTHING
"""

_LOCK_BALANCES = """
SELECT a.customer_id, a.balance
FROM unnest(CAST(:customers AS uuid[])) AS c(id)
CROSS JOIN LATERAL (SELECT customer_id, balance FROM loyalty_accounts
                    WHERE tenant_id = CAST(:tenant_id AS uuid) AND customer_id = c.id
                    FOR UPDATE) a
"""

_INSERT_EARN_ENTRIES = """
INSERT INTO loyalty_entries (tenant_id, id, customer_id, kind, points, balance_after, shortfall,
    source_type, source_id, actor, reason, idempotency_key, created_at)
SELECT :tenant_id, b.id, b.customer_id, 'earn', b.points, b.balance_after, 0, 'order',
       b.order_id, 'system', 'order completed', 'order:' || b.order_id || ':' || 'earn', :now
FROM unnest(CAST(:ids AS uuid[]), CAST(:customers AS uuid[]), CAST(:points AS bigint[]),
            CAST(:balances AS bigint[]), CAST(:orders AS uuid[]))
     AS b(id, customer_id, points, balance_after, order_id)
"""

_INSERT_EARN_LOTS = """
INSERT INTO loyalty_lots (tenant_id, id, customer_id, entry_id, points, remaining, earned_at,
    expires_at)
SELECT :tenant_id, b.lot_id, b.customer_id, b.entry_id, b.points, b.points, :now, :expires_at
FROM unnest(CAST(:lot_ids AS uuid[]), CAST(:customers AS uuid[]), CAST(:ids AS uuid[]),
            CAST(:points AS bigint[])) AS b(lot_id, customer_id, entry_id, points)
"""

_CREDIT_ACCOUNTS = """
UPDATE loyalty_accounts a
SET balance = a.balance + t.total, lifetime_points = a.lifetime_points + t.total,
    updated_at = :now
FROM unnest(CAST(:customers AS uuid[]), CAST(:totals AS bigint[])) AS t(customer_id, total)
WHERE a.tenant_id = :tenant_id AND a.customer_id = t.customer_id
"""

_MARK_POSTED = """
UPDATE loyalty_order_earns e SET status = 'posted', posted_entry_id = t.entry_id, updated_at = :now
FROM unnest(CAST(:orders AS uuid[]), CAST(:entries AS uuid[])) AS t(order_id, entry_id)
WHERE e.tenant_id = :tenant_id AND e.order_id = t.order_id
"""


async def post_due(
    session: AsyncSession, tenant_id: uuid.UUID, now: datetime, limit: int = 500
) -> int:
    """Post pending points whose return window has closed, up to `limit` orders; returns how
    many it posted (call again until 0).

    Set-based: earn rows are taken with SKIP LOCKED (a loader holding them is never waited
    for), accounts are opened and locked in customer order, then one statement each writes the
    entries (balances computed here, in order), the lots, the account totals and the posted
    marks. An account in debt goes through the ledger one posting at a time, as credits pay
    debts first.
    """
    due = (
        await session.execute(text(_DUE), {"tenant_id": tenant_id, "now": now, "limit": limit})
    ).all()
    if not due:
        return 0
    program = await current_program(session, tenant_id, now)
    customers = sorted({row.customer_id for row in due})
    keys = {"tenant_id": tenant_id, "customers": customers, "now": now}
    await session.execute(text(_OPEN_ACCOUNTS), keys)
    balances = {
        row.customer_id: row.balance for row in await session.execute(text(_LOCK_BALANCES), keys)
    }
    in_debt = {c for c, balance in balances.items() if balance < 0}
    batch: dict[str, list[Any]] = defaultdict(list)
    totals: dict[uuid.UUID, int] = defaultdict(int)
    posted_marks: dict[uuid.UUID, uuid.UUID | None] = {}
    for row in due:
        if row.customer_id in in_debt:
            continue
        if row.points == 0:
            posted_marks[row.order_id] = None
            continue
        entry_id = new_id()
        balances[row.customer_id] += row.points
        totals[row.customer_id] += row.points
        for name, value in (
            ("ids", entry_id),
            ("lot_ids", new_id()),
            ("customers", row.customer_id),
            ("points", row.points),
            ("balances", balances[row.customer_id]),
            ("orders", row.order_id),
        ):
            batch[name].append(value)
        posted_marks[row.order_id] = entry_id
    if batch:
        common = {"tenant_id": tenant_id, "now": now}
        await session.execute(text(_INSERT_EARN_ENTRIES), {**common, **batch})
        await session.execute(
            text(_INSERT_EARN_LOTS),
            {**common, **batch, "expires_at": expiry_for(program.settings, now)},
        )
        await session.execute(
            text(_CREDIT_ACCOUNTS),
            {**common, "customers": list(totals), "totals": list(totals.values())},
        )
    if posted_marks:
        await session.execute(
            text(_MARK_POSTED),
            {
                "tenant_id": tenant_id,
                "now": now,
                "orders": list(posted_marks),
                "entries": list(posted_marks.values()),
            },
        )
    await _post_in_debt(
        session, tenant_id, program, [r for r in due if r.customer_id in in_debt], now
    )
    await session.flush()
    await tiers.recompute_many(session, tenant_id, program, customers, now, "earn")
    return len(due)


async def _post_in_debt(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    program: Program,
    rows: Sequence[Any],
    now: datetime,
) -> None:
    by_customer: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in rows:
        by_customer[row.customer_id].append(row.order_id)
    for customer_id, order_ids in sorted(by_customer.items()):
        account = await lock_account(session, tenant_id, customer_id, now)
        for earn in (await _earns(session, tenant_id, order_ids)).values():
            await _post(session, account, program, earn, now)


async def _post(
    session: AsyncSession,
    account: LoyaltyAccount,
    program: Program,
    earn: LoyaltyOrderEarn,
    now: datetime,
) -> None:
    key = f"order:{earn.order_id}:earn"
    entry = await entry_by_key(session, account.tenant_id, key)
    if entry is None and earn.points > 0:
        posting = Posting(
            "earn", "order", "system", key, "order completed", source_id=earn.order_id
        )
        lot = NewLot(earn.points, expiry_for(program.settings, now))
        entry = await credit(session, account, posting, [lot], now)
    earn.status, earn.updated_at = "posted", now
    earn.posted_entry_id = entry.id if entry is not None else None
    await session.flush()

"""Loyalty through the HTTP API: accounts, redemptions, adjustments, reversals, program, tiers,
expiry, refunds, merges and reports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.runtime import Runtime
from app.services.loyalty import hooks, ledger
from tests.conftest import RunJobs
from tests.factories import TenantCtx
from tests.loyalty.conftest import Shop, ledger_state

if TYPE_CHECKING:
    from tests.conftest import TestClock

START = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def _url(customer: dict[str, Any], tail: str = "") -> str:
    return f"/api/v1/loyalty/accounts/{customer['id']}{tail}"


async def _post(
    ctx: TenantCtx, url: str, body: dict[str, Any], key: str | None = None, role: str = "owner"
) -> Any:
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return await ctx.request("POST", url, role=role, json=body, headers=headers)


async def _credit(ctx: TenantCtx, customer: dict[str, Any], points: int) -> dict[str, Any]:
    response = await _post(ctx, _url(customer, "/adjustments"), {"points": points, "reason": "t"})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _account(ctx: TenantCtx, customer: dict[str, Any]) -> dict[str, Any]:
    response = await ctx.request("GET", _url(customer))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _run_task(runtime: Runtime, run_jobs: RunJobs, name: str) -> None:
    await runtime.jobs.configure_task(f"kezhan:loyalty.{name}").defer_async(timestamp=0)
    await run_jobs()


async def test_a_new_customer_has_an_empty_account_in_the_entry_tier(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    account = await _account(shop.ctx, customer)
    assert account["balance"] == 0
    assert account["pending"] == 0
    assert account["tier"] == {"code": "regular", "name": "普通会员"}
    assert account["next_tier"] == {"code": "silver", "name": "银卡", "missing": 100_000}


async def test_another_tenants_customer_is_404(shop: Shop, tenants: Any) -> None:
    other = await tenants.create()
    customer = await other.customer()
    assert (await shop.ctx.request("GET", _url(customer))).status_code == 404
    response = await _post(shop.ctx, _url(customer, "/redemptions"), {"points": 1, "reason": "x"})
    assert response.status_code == 404


async def test_redemption_spends_the_oldest_lots_first(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    shop.clock.set(START)
    await _credit(shop.ctx, customer, 100)
    shop.clock.advance(timedelta(days=1))
    await _credit(shop.ctx, customer, 100)
    response = await _post(
        shop.ctx, _url(customer, "/redemptions"), {"points": 150, "reason": "coupon"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["points"] == -150
    assert response.json()["balance_after"] == 50
    async with shop.runtime.sessions() as session:
        left = (
            await session.execute(
                text(
                    "SELECT remaining FROM loyalty_lots WHERE tenant_id = :t AND customer_id = :c"
                    " ORDER BY earned_at"
                ),
                {"t": shop.ctx.tenant_id, "c": customer["id"]},
            )
        ).scalars()
        assert list(left) == [0, 50]
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_a_posting_whose_id_lags_another_process_still_follows_earlier_entries(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uuid7() runs ahead of the clock in a process that has just made many ids (the posting
    # job, an import); a posting from another process must still come after their entries.
    customer = await shop.ctx.customer()
    funded = await _credit(shop.ctx, customer, 100)
    behind = uuid.UUID(int=(uuid.UUID(funded["id"]).int - (3_600_000 << 80)))
    monkeypatch.setattr(ledger, "new_id", lambda: behind)
    response = await _post(shop.ctx, _url(customer, "/redemptions"), {"points": 40, "reason": "x"})
    assert response.status_code == 201, response.text
    assert response.json()["balance_after"] == 60
    entries = await shop.ctx.request("GET", _url(customer, "/entries"))
    assert [e["id"] for e in entries.json()["items"]] == [str(behind), funded["id"]]
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_redeeming_more_than_the_balance_is_409_with_the_balance(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    await _credit(shop.ctx, customer, 30)
    response = await _post(shop.ctx, _url(customer, "/redemptions"), {"points": 31, "reason": "x"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["balance"] == 30
    assert response.json()["requested"] == 31
    assert (await _account(shop.ctx, customer))["balance"] == 30


@pytest.mark.parametrize("points", [0, -5, 1.5, "10", None, True])
async def test_points_must_be_a_positive_whole_number(shop: Shop, points: Any) -> None:
    customer = await shop.ctx.customer()
    await _credit(shop.ctx, customer, 30)
    for tail in ("/redemptions", "/adjustments"):
        response = await _post(shop.ctx, _url(customer, tail), {"points": points, "reason": "x"})
        assert response.status_code == 422, (tail, points, response.text)
        assert response.json()["errors"][0]["loc"][:2] == ["body", "points"]


async def test_redemptions_and_adjustments_require_an_idempotency_key(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    for tail in ("/redemptions", "/adjustments"):
        response = await shop.ctx.request(
            "POST", _url(customer, tail), json={"points": 1, "reason": "x"}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_a_retried_redemption_returns_the_first_result_and_spends_once(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    await _credit(shop.ctx, customer, 100)
    body = {"points": 40, "reason": "coupon"}
    first = await _post(shop.ctx, _url(customer, "/redemptions"), body, key="k-1")
    again = await _post(shop.ctx, _url(customer, "/redemptions"), body, key="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = await _post(
        shop.ctx, _url(customer, "/redemptions"), {"points": 41, "reason": "x"}, key="k-1"
    )
    assert other.status_code == 422
    assert (await _account(shop.ctx, customer))["balance"] == 60


async def test_roles_agents_redeem_managers_adjust_analysts_read(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    await _credit(shop.ctx, customer, 100)
    redeem = _url(customer, "/redemptions")
    adjust = _url(customer, "/adjustments")
    body = {"points": 1, "reason": "x"}
    assert (await _post(shop.ctx, redeem, body, role="agent")).status_code == 201
    assert (await _post(shop.ctx, adjust, body, role="agent")).status_code == 403
    assert (await _post(shop.ctx, adjust, body, role="admin")).status_code == 201
    assert (await _post(shop.ctx, redeem, body, role="analyst")).status_code == 403
    read = await shop.ctx.request("GET", _url(customer), role="analyst")
    assert read.json()["balance"] == 100
    put = await shop.ctx.request("PUT", "/api/v1/loyalty/program", role="agent", json={})
    assert put.status_code == 403


async def test_debit_adjustment_never_overdraws(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    await _credit(shop.ctx, customer, 10)
    url = _url(customer, "/adjustments")
    debit = {"points": 11, "reason": "x", "direction": "debit"}
    assert (await _post(shop.ctx, url, debit)).status_code == 409
    debit["points"] = 10
    response = await _post(shop.ctx, url, debit)
    assert response.json()["points"] == -10
    assert (await _account(shop.ctx, customer))["balance"] == 0


async def test_entries_are_listed_newest_first_with_a_cursor(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    for points in (1, 2, 3):
        await _credit(shop.ctx, customer, points)
    first = await shop.ctx.request("GET", _url(customer, "/entries?limit=2"))
    assert [e["points"] for e in first.json()["items"]] == [3, 2]
    cursor = first.json()["next_cursor"]
    rest = await shop.ctx.request("GET", _url(customer, f"/entries?limit=2&cursor={cursor}"))
    assert [e["points"] for e in rest.json()["items"]] == [1]
    assert rest.json()["next_cursor"] is None


async def test_reversing_a_redemption_gives_the_points_back_once(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    await _credit(shop.ctx, customer, 100)
    spent = await _post(shop.ctx, _url(customer, "/redemptions"), {"points": 70, "reason": "x"})
    url = f"/api/v1/loyalty/entries/{spent.json()['id']}/reverse"
    first = await shop.ctx.request("POST", url, json={"reason": "order cancelled"})
    assert first.status_code == 201
    assert first.json()["points"] == 70
    assert first.json()["related_entry_id"] == spent.json()["id"]
    again = await shop.ctx.request("POST", url, json={"reason": "order cancelled"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert (await _account(shop.ctx, customer))["balance"] == 100
    twice = f"/api/v1/loyalty/entries/{first.json()['id']}/reverse"
    assert (await shop.ctx.request("POST", twice, json={"reason": "x"})).status_code == 409
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_the_database_refuses_to_update_or_delete_entries(shop: Shop) -> None:
    customer = await shop.ctx.customer()
    entry = await _credit(shop.ctx, customer, 5)
    for statement in (
        "UPDATE loyalty_entries SET points = 500 WHERE id = :id",
        "DELETE FROM loyalty_entries WHERE id = :id",
    ):
        async with shop.runtime.sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement), {"id": entry["id"]})


async def test_program_changes_are_versioned_with_etags(shop: Shop) -> None:
    got = await shop.ctx.request("GET", "/api/v1/loyalty/program")
    assert got.status_code == 200
    assert got.json()["points_per_yuan"] == 1
    assert got.json()["return_window_days"] == 7
    assert got.headers["etag"] == '"0"'
    body = {**got.json(), "points_per_yuan": 2}
    for field in ("version", "effective_from", "scheduled"):
        body.pop(field)
    put = await shop.ctx.request(
        "PUT", "/api/v1/loyalty/program", json=body, headers={"If-Match": '"0"'}
    )
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == '"1"'
    assert put.json()["points_per_yuan"] == 2
    stale = await shop.ctx.request(
        "PUT", "/api/v1/loyalty/program", json=body, headers={"If-Match": '"0"'}
    )
    assert stale.status_code == 412
    past = await shop.ctx.request(
        "PUT", "/api/v1/loyalty/program", json={**body, "effective_from": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 422
    later = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    scheduled = await shop.ctx.request(
        "PUT",
        "/api/v1/loyalty/program",
        json={**body, "points_per_yuan": 5, "effective_from": later},
    )
    assert scheduled.json()["points_per_yuan"] == 2
    assert [s["version"] for s in scheduled.json()["scheduled"]] == [2]
    bad_tiers = {**body, "tiers": [{"code": "a", "name": "A", "threshold": 10}]}
    assert (
        await shop.ctx.request("PUT", "/api/v1/loyalty/program", json=bad_tiers)
    ).status_code == 422


async def _set_program(ctx: TenantCtx, **settings: Any) -> None:
    response = await ctx.request("PUT", "/api/v1/loyalty/program", json=settings)
    assert response.status_code == 200, response.text


async def test_orders_earn_pending_then_post_after_the_return_window(
    shop: Shop, run_jobs: RunJobs
) -> None:
    shop.clock.set(START)
    customer = await shop.ctx.customer()
    await shop.order(customer["id"], paid_fen=25_050)
    account = await _account(shop.ctx, customer)
    assert (account["balance"], account["pending"]) == (0, 250)
    spend = await _post(shop.ctx, _url(customer, "/redemptions"), {"points": 1, "reason": "x"})
    assert spend.status_code == 409  # pending points are not spendable
    shop.clock.advance(timedelta(days=7, minutes=1))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    account = await _account(shop.ctx, customer)
    assert (account["balance"], account["pending"]) == (250, 0)
    entries = (await shop.ctx.request("GET", _url(customer, "/entries"))).json()["items"]
    assert [(e["kind"], e["points"], e["source_type"]) for e in entries] == [("earn", 250, "order")]


async def test_a_program_change_applies_to_new_earnings_only(shop: Shop, run_jobs: RunJobs) -> None:
    shop.clock.set(START)
    customer = await shop.ctx.customer()
    await shop.order(customer["id"], paid_fen=10_000)
    await _set_program(shop.ctx, points_per_yuan=3)
    await shop.order(customer["id"], paid_fen=10_000)
    shop.clock.advance(timedelta(days=8))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    entries = (await shop.ctx.request("GET", _url(customer, "/entries"))).json()["items"]
    assert sorted(e["points"] for e in entries) == [100, 300]


async def test_a_refund_inside_the_window_voids_the_pending_points(
    shop: Shop, run_jobs: RunJobs
) -> None:
    shop.clock.set(START)
    customer = await shop.ctx.customer()
    order = await shop.order(customer["id"], paid_fen=50_000)
    shop.clock.advance(timedelta(days=3))
    await shop.change(order, status="refunded", refund_fen=50_000)
    shop.clock.advance(timedelta(days=10))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    account = await _account(shop.ctx, customer)
    assert (account["balance"], account["pending"]) == (0, 0)


async def test_a_partial_refund_after_posting_reverses_that_share_and_rolls_the_tier_back(
    shop: Shop, run_jobs: RunJobs
) -> None:
    shop.clock.set(START)
    customer = await shop.ctx.customer()
    order = await shop.order(customer["id"], paid_fen=120_000)  # 1,200 yuan: silver
    shop.clock.advance(timedelta(days=8))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    account = await _account(shop.ctx, customer)
    assert account["balance"] == 1200
    assert account["tier"]["code"] == "silver"
    await shop.change(order, status="partially_refunded", refund_fen=30_000)
    await shop.change(order, status="partially_refunded", refund_fen=30_000)  # reported twice
    account = await _account(shop.ctx, customer)
    assert account["balance"] == 900
    assert account["tier"]["code"] == "regular"
    entries = (await shop.ctx.request("GET", _url(customer, "/entries"))).json()["items"]
    assert [(e["kind"], e["points"]) for e in entries] == [("reverse", -300), ("earn", 1200)]
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


@pytest.mark.parametrize(
    ("policy", "balance", "shortfall"),
    [("allow_negative", -600, 0), ("claw_back_remaining", 0, 600)],
)
async def test_refunding_spent_points_follows_the_negative_balance_policy(
    shop: Shop, run_jobs: RunJobs, policy: str, balance: int, shortfall: int
) -> None:
    shop.clock.set(START)
    await _set_program(shop.ctx, negative_policy=policy)
    customer = await shop.ctx.customer()
    order = await shop.order(customer["id"], paid_fen=100_000)
    shop.clock.advance(timedelta(days=8))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    await _post(shop.ctx, _url(customer, "/redemptions"), {"points": 600, "reason": "spent"})
    await shop.change(order, status="refunded", refund_fen=100_000)
    account = await _account(shop.ctx, customer)
    assert account["balance"] == balance
    reverse = (await shop.ctx.request("GET", _url(customer, "/entries"))).json()["items"][0]
    assert (reverse["kind"], reverse["shortfall"]) == ("reverse", shortfall)
    await _credit(shop.ctx, customer, 1000)
    assert (await _account(shop.ctx, customer))["balance"] == balance + 1000
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_expiry_takes_only_what_is_left_of_a_lot(shop: Shop, run_jobs: RunJobs) -> None:
    shop.clock.set(START)
    await _set_program(shop.ctx, expiry={"mode": "months_after_earn", "months": 12})
    customer = await shop.ctx.customer()
    await _credit(shop.ctx, customer, 100)
    shop.clock.advance(timedelta(days=60))
    await _credit(shop.ctx, customer, 50)
    await _post(shop.ctx, _url(customer, "/redemptions"), {"points": 70, "reason": "x"})
    shop.clock.set(datetime(2027, 2, 20, tzinfo=UTC))
    soon = await shop.ctx.request("GET", "/api/v1/loyalty/expiring?within_days=30")
    assert [(i["customer_id"], i["points"]) for i in soon.json()["items"]] == [(customer["id"], 30)]
    assert (await _account(shop.ctx, customer))["expiring_soon"] == 30
    shop.clock.set(datetime(2027, 3, 2, tzinfo=UTC))
    await _run_task(shop.runtime, run_jobs, "expire_lots")
    await _run_task(shop.runtime, run_jobs, "expire_lots")
    entries = (await shop.ctx.request("GET", _url(customer, "/entries"))).json()["items"]
    assert [(e["kind"], e["points"]) for e in entries][:1] == [("expire", -30)]
    assert (await _account(shop.ctx, customer))["balance"] == 50
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_fixed_yearly_expiry_date(shop: Shop, run_jobs: RunJobs) -> None:
    shop.clock.set(datetime(2026, 5, 1, tzinfo=UTC))
    await _set_program(
        shop.ctx, expiry={"mode": "fixed_yearly_date", "month": 12, "day": 31, "extra_years": 1}
    )
    customer = await shop.ctx.customer()
    await _credit(shop.ctx, customer, 10)
    lots = await shop.ctx.request("GET", _url(customer, "/expiring?within_days=366"))
    assert lots.json()["items"] == []
    shop.clock.set(datetime(2027, 12, 15, tzinfo=UTC))
    lots = await shop.ctx.request("GET", _url(customer, "/expiring?within_days=30"))
    # End of 2027-12-31 in Asia/Shanghai.
    assert lots.json()["items"][0]["expires_at"] == "2027-12-31T16:00:00Z"


async def test_merging_customers_moves_points_with_a_traceable_pair(shop: Shop) -> None:
    survivor, merged = await shop.ctx.customer(), await shop.ctx.customer()
    await _credit(shop.ctx, survivor, 10)
    await _credit(shop.ctx, merged, 40)
    for _ in range(2):
        async with shop.runtime.sessions() as session:
            await hooks.customers_merged(
                session,
                shop.ctx.tenant_id,
                uuid.UUID(survivor["id"]),
                uuid.UUID(merged["id"]),
                shop.clock(),
            )
            await session.commit()
    assert (await _account(shop.ctx, survivor))["balance"] == 50
    assert (await _account(shop.ctx, merged))["balance"] == 0
    into = (await shop.ctx.request("GET", _url(survivor, "/entries"))).json()["items"][0]
    out = (await shop.ctx.request("GET", _url(merged, "/entries"))).json()["items"][0]
    assert (into["kind"], into["points"], into["source_type"]) == ("adjust", 40, "merge")
    assert (out["kind"], out["points"], out["source_id"]) == ("adjust", -40, survivor["id"])
    assert into["related_entry_id"] == out["id"]
    assert into["source_id"] == merged["id"]
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []


async def test_referral_bonus_is_paid_once_per_referred_customer(shop: Shop) -> None:
    referrer, referred = await shop.ctx.customer(), await shop.ctx.customer()
    body = {"referrer_id": referrer["id"], "referred_id": referred["id"]}
    none = await shop.ctx.request("POST", "/api/v1/loyalty/referrals", json=body)
    assert none.status_code == 409
    await _set_program(shop.ctx, referral_bonus=200)
    first = await shop.ctx.request("POST", "/api/v1/loyalty/referrals", json=body)
    again = await shop.ctx.request("POST", "/api/v1/loyalty/referrals", json=body)
    assert first.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert (await _account(shop.ctx, referrer))["balance"] == 200


async def test_birthday_bonus_is_granted_once_a_year(
    shop: Shop, run_jobs: RunJobs, clock: TestClock
) -> None:
    clock.set(datetime(2026, 6, 14, 17, 0, tzinfo=UTC))  # 01:00 on 15 June in Shanghai
    await _set_program(shop.ctx, birthday_bonus=88)
    customer = await shop.ctx.customer(birthday="1990-06-15")
    await _run_task(shop.runtime, run_jobs, "birthday_bonuses")
    await _run_task(shop.runtime, run_jobs, "birthday_bonuses")
    assert (await _account(shop.ctx, customer))["balance"] == 88


async def test_tiers_list_members_and_the_monthly_report_adds_up(
    shop: Shop, run_jobs: RunJobs
) -> None:
    shop.clock.set(START)
    customer = await shop.ctx.customer()
    await shop.order(customer["id"], paid_fen=600_000)
    shop.clock.advance(timedelta(days=8))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    tiers = (await shop.ctx.request("GET", "/api/v1/loyalty/tiers")).json()
    assert {t["code"]: t["members"] for t in tiers}["gold"] == 1
    shop.clock.set(datetime(2026, 4, 10, tzinfo=UTC))
    await _post(shop.ctx, _url(customer, "/redemptions"), {"points": 1000, "reason": "x"})
    report = (await shop.ctx.request("GET", "/api/v1/loyalty/reports/monthly")).json()
    assert report == [
        {
            "month": "2026-03",
            "issued": 6000,
            "redeemed": 0,
            "expired": 0,
            "reversed": 0,
            "adjusted_out": 0,
            "outstanding": 6000,
        },
        {
            "month": "2026-04",
            "issued": 0,
            "redeemed": 1000,
            "expired": 0,
            "reversed": 0,
            "adjusted_out": 0,
            "outstanding": 5000,
        },
    ]


async def test_reversing_an_order_earn_leaves_nothing_for_a_later_refund_to_take(
    shop: Shop, run_jobs: RunJobs
) -> None:
    shop.clock.set(START)
    customer = await shop.ctx.customer()
    order = await shop.order(customer["id"], paid_fen=100_000)
    shop.clock.advance(timedelta(days=8))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    earn = (await shop.ctx.request("GET", _url(customer, "/entries"))).json()["items"][0]
    reversed_ = await shop.ctx.request(
        "POST", f"/api/v1/loyalty/entries/{earn['id']}/reverse", json={"reason": "fraud"}
    )
    assert reversed_.json()["points"] == -1000
    await shop.change(order, status="partially_refunded", refund_fen=50_000)
    entries = (await shop.ctx.request("GET", _url(customer, "/entries"))).json()["items"]
    assert [(e["kind"], e["points"]) for e in entries] == [("reverse", -1000), ("earn", 1000)]
    assert (await _account(shop.ctx, customer))["balance"] == 0


async def test_earning_on_payment_posts_only_after_the_window_from_completion(
    shop: Shop, run_jobs: RunJobs
) -> None:
    shop.clock.set(START)
    await _set_program(shop.ctx, earning_status="paid")
    customer = await shop.ctx.customer()
    order = await shop.order(customer["id"], paid_fen=20_000, status="paid")
    assert (await _account(shop.ctx, customer))["pending"] == 200
    shop.clock.advance(timedelta(days=30))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    assert (await _account(shop.ctx, customer))["balance"] == 0  # not completed yet
    await shop.change(order, status="completed")
    shop.clock.advance(timedelta(days=7, seconds=1))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    account = await _account(shop.ctx, customer)
    assert (account["balance"], account["pending"]) == (200, 0)


async def test_a_merge_moves_pending_order_points_to_the_survivor(
    shop: Shop, run_jobs: RunJobs
) -> None:
    shop.clock.set(START)
    survivor, merged = await shop.ctx.customer(), await shop.ctx.customer()
    await shop.order(merged["id"], paid_fen=30_000)
    response = await shop.ctx.request(
        "POST",
        f"/api/v1/customers/{survivor['id']}/merge",
        json={"other_customer_id": merged["id"]},
    )
    assert response.status_code == 200, response.text
    assert (await _account(shop.ctx, survivor))["pending"] == 300
    shop.clock.advance(timedelta(days=8))
    await _run_task(shop.runtime, run_jobs, "post_pending")
    assert (await _account(shop.ctx, survivor))["balance"] == 300
    history = await shop.ctx.request("GET", _url(survivor, "/entries"))
    assert [e["kind"] for e in history.json()["items"]] == ["earn"]
    assert await ledger_state(shop.runtime, shop.ctx.tenant_id) == []

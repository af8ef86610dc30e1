"""Segment previews from the in-memory customer frame give exactly the SQL's answers: every
filter case of test_filters, random filters over a random crowd with every sort and every page,
and nothing stale after any committed change (member_frames.py, migration 0015)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest
import pytest_asyncio
from sqlalchemy import text

from app.runtime import Runtime
from app.schemas.segments import MemberSort
from app.services.auth import Principal, Role
from app.services.segments import member_frames, query, saved
from app.services.segments.fields import QueryContext
from app.services.segments.frame_filter import frame_filter
from app.services.segments.member_frames import MemberFrames, compact_changes, id_halves
from tests.conftest import TestClock
from tests.factories import TenantCtx, TenantFactory
from tests.segments.conftest import NOW, World
from tests.segments.orders import add_order, recompute
from tests.segments.test_filters import CASES

_CHANGES = "SELECT coalesce(sum(statements), 0) FROM customer_changes WHERE tenant_id = :t"


def cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


@pytest_asyncio.fixture(loop_scope="session")
async def frames(runtime: Runtime) -> AsyncIterator[MemberFrames]:
    """Frames for every tenant, however small."""
    member_frames = MemberFrames(runtime.database_url, 0, 1_000_000)
    yield member_frames
    await member_frames.close()


async def _loaded(frames: MemberFrames, runtime: Runtime, tenant_id: uuid.UUID) -> None:
    async with runtime.read_sessions() as session:
        if await frames.current(session, tenant_id) is None:
            await frames.wait_loaded()
            assert await frames.current(session, tenant_id) is not None


def _no_sql_count(*args: Any) -> Any:
    raise AssertionError("counted in SQL, not from the frame")


async def test_every_filter_case_gives_the_same_answer_from_the_frame(
    world: World,
    now: datetime,
    runtime: Runtime,
    frames: MemberFrames,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "member_frames", frames)
    first = await world.preview(cond("order_count", "gte", 0))  # SQL's; starts the load
    assert first.headers["Server-Timing"] == 'count;desc="database"'
    await _loaded(frames, runtime, world.tenant.tenant_id)
    sql_count = query.count_members
    monkeypatch.setattr(query, "count_members", _no_sql_count)
    async with runtime.read_sessions() as session:
        ctx = QueryContext(world.tenant.tenant_id, now)
        frame = await frames.current(session, world.tenant.tenant_id)
    assert frame is not None
    ran = whole = 0
    for name, tree, expected in CASES:
        if frame_filter(tree, ctx, frame) is None:
            # Products, identities: the frame only narrows an `and` down for the SQL.
            tree = {"and": [cond("order_count", "gte", 0), tree]}
        else:
            whole += 1
        assert await world.matching(tree) == expected, name
        ran += 1
    assert whole >= 70  # every ordered case without item keys among them
    answered = await world.preview(cond("order_count", "gte", 0))
    assert answered.headers["Server-Timing"] == 'count;desc="memory"'
    # A saved segment's members come from the frame too, the first page recording the size
    # (saving counts in SQL).
    tree = {"and": [cond("order_count", "gte", 1), {"ordered": {"category": "茶叶"}}]}
    monkeypatch.setattr(query, "count_members", sql_count)
    created = await world.tenant.request(
        "POST", "/api/v1/segments", json={"name": "frames", "filter": tree}
    )
    assert created.status_code == 201, created.text
    monkeypatch.setattr(query, "count_members", _no_sql_count)
    segment = created.json()["id"]
    page = await world.tenant.request("GET", f"/api/v1/segments/{segment}/members")
    assert page.status_code == 200, page.text
    assert world.names(page.json()["items"]) == {"A"}
    sizes = await world.tenant.request("GET", f"/api/v1/segments/{segment}/sizes")
    assert [p["member_count"] for p in sizes.json()["items"]][-1] == 1
    assert ran == len(CASES)


# --- random filters over a random crowd ----------------------------------------------------

PROVINCES = ["浙江省", "广东省", "江苏省", None]
CITIES = {"浙江省": ["杭州市", "宁波市"], "广东省": ["深圳市", "广州市"], "江苏省": ["南京市"]}
TAGS = ["vip", "茶客", "新客", "黑名单"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def crowd(
    client: Any, runtime: Runtime, test_clock: TestClock
) -> tuple[TenantCtx, dict[str, Any]]:
    """45 customers with random places, tags, birthdays and 0-4 orders over two years on two
    platforms (some refunded) of products in two categories, scored at NOW."""
    rng = random.Random(7)
    test_clock.set(NOW)
    tenant = await TenantFactory(client, runtime).create()
    for rule in (
        {"category": "茶", "match": "code_prefix", "pattern": "TEA"},
        {"category": "饮品", "match": "code_prefix", "pattern": "COF"},
        {"category": "饮品", "match": "title_keyword", "pattern": "奶茶"},
    ):
        created = await tenant.request("POST", "/api/v1/segments/category-rules", json=rule)
        assert created.status_code == 201, created.text
    shops = [await tenant.shop("tmall"), await tenant.shop("pinduoduo")]
    for n in range(45):
        province = rng.choice(PROVINCES)
        fields: dict[str, Any] = {
            "display_name": rng.choice(["王", "李", "张", "%_"]) + str(n),
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
        }
        if province is not None:
            fields |= {"province": province, "city": rng.choice(CITIES[province] + [None])}
        if rng.random() < 0.6:
            fields["gender"] = rng.choice(["male", "female", "unknown"])
        if rng.random() < 0.5:
            fields["birthday"] = (
                f"{rng.randint(1960, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
            )
        customer = await tenant.customer(**fields)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 4])):
            paid = rng.randint(100, 90000)
            await add_order(
                runtime,
                tenant.tenant_id,
                customer["id"],
                rng.choice(shops),
                NOW - timedelta(days=rng.randint(0, 700), minutes=rng.randint(0, 1440)),
                paid,
                [(rng.choice(["TEA-1", "COF-2", "X-3"]), rng.choice(["商品", "珍珠奶茶"]))],
                status=rng.choice(["completed", "completed", "shipped", "refunded"]),
                refund_fen=rng.choice([0, 0, paid // 2]),
            )
    await recompute(runtime, tenant.tenant_id)
    return tenant, {"shops": [s["id"] for s in shops]}


def _random_condition(rng: random.Random, shops: list[str]) -> dict[str, Any]:
    when = (NOW - timedelta(days=rng.randint(0, 700))).isoformat()
    choices: list[Any] = [
        cond("province", rng.choice(["eq", "ne"]), rng.choice(PROVINCES[:3])),
        cond("province", rng.choice(["in", "not_in"]), rng.sample(PROVINCES[:3], 2)),
        cond("city", rng.choice(["contains", "starts_with"]), rng.choice(["杭", "州", "深圳"])),
        cond("city", "is_null", rng.random() < 0.5),
        cond("display_name", "starts_with", rng.choice(["王", "%", "李"])),
        cond("gender", rng.choice(["eq", "ne"]), rng.choice(["male", "female"])),
        cond("gender", rng.choice(["in", "not_in"]), ["male", "unknown"]),
        cond("birthday", rng.choice(["lt", "gte", "ne"]), f"{rng.randint(1960, 2005)}-06-01"),
        cond("tags", rng.choice(["contains", "in", "not_in"]), rng.sample(TAGS, rng.randint(1, 2))),
        cond("tags", "is_null", rng.random() < 0.5),
        cond("order_count", rng.choice(["eq", "ne", "gt", "lte"]), rng.randint(0, 4)),
        cond("order_count", rng.choice(["in", "not_in"]), [0, rng.randint(1, 4)]),
        cond("total_spent_fen", rng.choice(["gte", "lt"]), rng.randint(0, 150000)),
        cond("avg_order_value_fen", "between", sorted([rng.randint(0, 90000) for _ in "ab"])),
        cond("refund_rate", rng.choice(["gt", "lte", "eq"]), rng.choice([0, 0.5, 0.25])),
        cond("refund_count", rng.choice(["gte", "eq"]), rng.randint(0, 2)),
        cond("last_order_at", rng.choice(["lt", "gte"]), when),
        cond("first_order_at", "within_days", rng.randint(0, 700)),
        cond("last_order_at", "is_null", rng.random() < 0.5),
        cond("days_since_last_order", rng.choice(["gte", "lt", "eq"]), rng.randint(0, 700)),
        cond("platforms", rng.choice(["contains", "in", "not_in"]), ["tmall"]),
        cond("shops", rng.choice(["contains", "in", "not_in"]), [rng.choice(shops)]),
        cond("categories", "is_null", rng.random() < 0.5),
        cond("rfm_r", rng.choice(["gte", "eq", "ne"]), rng.randint(1, 5)),
        cond("rfm_m", rng.choice(["in", "not_in"]), [rng.randint(1, 5), rng.randint(1, 5)]),
        cond("rfm_group", rng.choice(["eq", "ne"]), "important_value"),
        cond("rfm_f", "is_null", rng.random() < 0.5),
        cond("lifecycle_stage", rng.choice(["in", "not_in"]), ["prospect", "new", "churned"]),
        cond("lifecycle_stage", rng.choice(["eq", "ne"]), "active"),
        cond("lifecycle_since", rng.choice(["gt", "lte"]), when),
        cond("created_at", "within_days", rng.randint(0, 3)),
    ]
    return rng.choice(choices)  # type: ignore[no-any-return]


def _random_ordered(rng: random.Random, shops: list[str], items: bool) -> dict[str, Any]:
    """An `ordered` condition; with `items`, maybe one on item lines (not held by the frame)."""
    spec: dict[str, Any] = {"min_times": rng.randint(1, 2)}
    if items and rng.random() < 0.4:
        spec["product_prefix"] = rng.choice(["TEA", "COF"])
    for key, value in (
        ("category", rng.choice(["茶", "饮品", "没有规则"])),
        ("since", (NOW - timedelta(days=rng.randint(0, 700))).isoformat()),
        ("until", (NOW - timedelta(days=rng.randint(0, 700))).isoformat()),
        ("max_amount_fen", rng.randint(100, 90000)),
        ("platform", rng.choice(["tmall", "pinduoduo"])),
        ("shop_id", rng.choice(shops)),
        ("within_days", rng.randint(30, 700)),
        ("min_amount_fen", rng.randint(100, 50000)),
    ):
        if rng.random() < 0.3:
            spec[key] = value
    return {"ordered": spec}


def _random_tree(rng: random.Random, shops: list[str], depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return _random_condition(rng, shops)
    if roll < 0.6:
        return {"not": _random_tree(rng, shops, depth + 1)}
    key = "and" if roll < 0.82 else "or"
    return {key: [_random_tree(rng, shops, depth + 1) for _ in range(rng.randint(1, 3))]}


async def _every_page(
    runtime: Runtime,
    actor: Principal,
    tree: Any,
    frames: MemberFrames | None,
    sort: MemberSort,
    descending: bool,
) -> list[tuple[int, list[uuid.UUID], str | None]]:
    pages, cursor = [], None
    while True:
        async with runtime.read_sessions() as session:
            result = await saved.preview(
                session, actor, tree, NOW, 4, cursor, sort, descending, frames
            )
        pages.append((result.count, [item.id for item in result.items], result.next_cursor))
        cursor = result.next_cursor
        if cursor is None or len(pages) > 20:
            return pages


@pytest.mark.parametrize("mask_bits", [63, 0], ids=["lists as bit masks", "lists as lists"])
async def test_random_filters_sorts_and_pages_match_sql(
    crowd: tuple[TenantCtx, dict[str, Any]],
    now: datetime,
    runtime: Runtime,
    frames: MemberFrames,
    monkeypatch: pytest.MonkeyPatch,
    mask_bits: int,
) -> None:
    tenant, data = crowd
    actor = Principal(tenant.tenant_id, uuid.uuid4(), Role.analyst, "test")
    monkeypatch.setattr(member_frames, "_MASK_BITS", mask_bits)
    await _loaded(frames, runtime, tenant.tenant_id)
    async with runtime.read_sessions() as session:
        frame = await frames.current(session, tenant.tenant_id)
    assert frame is not None
    assert set(frame.masks) == (
        {"tags", "platforms", "shops", "categories"} if mask_bits else set()
    )
    rng = random.Random(2026)
    sql_count = query.count_members
    matched = 0
    for attempt in range(120):
        tree = _random_tree(rng, data["shops"])
        if rng.random() < 0.4:  # with item keys, checked in SQL among the frame's candidates
            tree = {"and": [tree, _random_ordered(rng, data["shops"], items=True)]}
        elif rng.random() < 0.2:
            tree = {"or": [tree, {"not": _random_ordered(rng, data["shops"], items=False)}]}
        sort = rng.choice(list(MemberSort))
        descending = rng.random() < 0.5
        monkeypatch.setattr(query, "count_members", sql_count)
        expected = await _every_page(runtime, actor, tree, None, sort, descending)
        monkeypatch.setattr(query, "count_members", _no_sql_count)
        got = await _every_page(runtime, actor, tree, frames, sort, descending)
        assert got == expected, (attempt, tree, sort, descending)
        matched += expected[0][0] > 0
    assert matched > 40  # the filters were not all empty


async def test_a_filter_the_frame_narrows_too_little_is_answered_in_sql(
    crowd: tuple[TenantCtx, dict[str, Any]],
    now: datetime,
    runtime: Runtime,
    frames: MemberFrames,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant, _ = crowd
    actor = Principal(tenant.tenant_id, uuid.uuid4(), Role.analyst, "test")
    await _loaded(frames, runtime, tenant.tenant_id)
    tree = {"and": [cond("order_count", "gte", 1), {"ordered": {"product_prefix": "TEA"}}]}

    async def preview() -> saved.Preview:
        async with runtime.read_sessions() as session:
            return await saved.preview(session, actor, tree, NOW, 5, None, frames=frames)

    narrowed = await preview()
    assert narrowed.from_memory
    monkeypatch.setattr(member_frames, "MAX_CANDIDATES", narrowed.count - 1)
    in_sql = await preview()
    assert not in_sql.from_memory
    assert (in_sql.count, in_sql.items) == (narrowed.count, narrowed.items)


async def test_a_committed_change_is_never_answered_from_the_stale_frame(
    crowd: tuple[TenantCtx, dict[str, Any]],
    now: datetime,
    runtime: Runtime,
    frames: MemberFrames,
) -> None:
    """A change committed after the frame's snapshot (even by a transaction that began before
    it) makes the frame stale; the SQL answers until the reload, which has the change."""
    tenant, _ = crowd
    actor = Principal(tenant.tenant_id, uuid.uuid4(), Role.analyst, "test")
    tagged = cond("tags", "contains", "frames-test")
    await _loaded(frames, runtime, tenant.tenant_id)

    async def count() -> int:
        async with runtime.read_sessions() as session:
            return (await saved.preview(session, actor, tagged, NOW, 5, None, frames=frames)).count

    async def answer(tree: Any) -> tuple[int, bool]:
        """The count with the frames, and whether the frame gave it."""
        async with runtime.read_sessions() as session:
            result = await saved.preview(session, actor, tree, NOW, 5, None, frames=frames)
        return result.count, result.from_memory

    assert await count() == 0
    async with runtime.sessions() as writer:
        await writer.execute(
            text(
                "UPDATE customers SET tags = tags || '{frames-test}' WHERE id = "
                "(SELECT id FROM customers WHERE tenant_id = :t ORDER BY id LIMIT 1)"
            ),
            {"t": tenant.tenant_id},
        )
        # Not committed yet: the frame is current and does not see it; nor does SQL.
        async with runtime.read_sessions() as session:
            assert await frames.current(session, tenant.tenant_id) is not None
        assert await count() == 0
        # A reload now would not see it either (its snapshot is before the commit).
        frames._frames.clear()
        await _loaded(frames, runtime, tenant.tenant_id)
        stale = frames._frames[tenant.tenant_id]
        await writer.commit()
    async with runtime.read_sessions() as session:
        assert await frames.current(session, tenant.tenant_id) is None  # stale: reloading
    assert frames._frames.get(tenant.tenant_id) is not stale  # not kept while reloading
    assert await count() == 1
    await frames.wait_loaded()
    async with runtime.read_sessions() as session:
        assert await frames.current(session, tenant.tenant_id) is not None
    assert await count() == 1
    # An order (with its customer's facts refreshed, as every order write does) and a
    # category rule make the frame stale too.
    await frames.wait_loaded()
    bought = {"ordered": {"category": "茶", "min_amount_fen": 99_999_999}}
    assert await answer(bought) == (0, True)
    customer = (await tenant.request("GET", "/api/v1/customers", params={"limit": 1})).json()
    shop = (await tenant.request("GET", "/api/v1/shops")).json()["items"][0]
    await add_order(
        runtime,
        tenant.tenant_id,
        customer["items"][0]["id"],
        shop,
        NOW,
        99_999_999,
        [("TEA-9", "大红袍")],
    )
    assert await answer(bought) == (1, False)
    await frames.wait_loaded()
    assert await answer(bought) == (1, True)
    coffee = {"ordered": {"category": "咖啡"}}
    assert await answer(coffee) == (0, True)
    rule = {"category": "咖啡", "match": "code_prefix", "pattern": "COF"}
    created = await tenant.request("POST", "/api/v1/segments/category-rules", json=rule)
    assert created.status_code == 201
    coffee_buyers, from_memory = await answer(coffee)
    assert coffee_buyers > 0
    assert not from_memory
    await frames.wait_loaded()
    assert await answer(coffee) == (coffee_buyers, True)
    deleted = await tenant.request(
        "DELETE", f"/api/v1/segments/category-rules/{created.json()['id']}"
    )
    assert deleted.status_code == 204
    async with runtime.sessions() as writer:  # put the crowd back as it was
        await writer.execute(
            text(
                "UPDATE customers SET tags = array_remove(tags, 'frames-test') WHERE tenant_id = :t"
            ),
            {"t": tenant.tenant_id},
        )
        await writer.commit()


async def test_compaction_keeps_the_change_count(
    crowd: tuple[TenantCtx, dict[str, Any]], runtime: Runtime
) -> None:
    tenant, _ = crowd
    async with runtime.sessions() as session:
        before = await session.scalar(text(_CHANGES), {"t": tenant.tenant_id})
        rows = await session.scalar(
            text("SELECT count(*) FROM customer_changes WHERE tenant_id = :t"),
            {"t": tenant.tenant_id},
        )
        assert before > 1
        assert rows > 1
        await compact_changes(session, tenant.tenant_id)
        assert await session.scalar(text(_CHANGES), {"t": tenant.tenant_id}) == before
        assert (
            await session.scalar(
                text("SELECT count(*) FROM customer_changes WHERE tenant_id = :t"),
                {"t": tenant.tenant_id},
            )
            == 1
        )
        await session.rollback()


async def test_small_tenants_stay_in_sql_and_frames_are_evicted_beyond_the_limit(
    crowd: tuple[TenantCtx, dict[str, Any]],
    world: World,
    now: datetime,
    runtime: Runtime,
) -> None:
    tenant, _ = crowd
    small = MemberFrames(runtime.database_url, 46, 1_000)
    async with runtime.read_sessions() as session:
        assert await small.current(session, tenant.tenant_id) is None
        await small.wait_loaded()
        assert await small.current(session, tenant.tenant_id) is None  # 45 < 46: not loaded
        assert not small._loading  # and not tried again while nothing changes
    room_for_one = MemberFrames(runtime.database_url, 0, 45)
    try:
        await _loaded(room_for_one, runtime, tenant.tenant_id)
        await _loaded(room_for_one, runtime, world.tenant.tenant_id)
        async with runtime.read_sessions() as session:
            assert await room_for_one.current(session, tenant.tenant_id) is None  # evicted
    finally:
        await room_for_one.close()
        await small.close()


async def test_a_failed_load_is_retried_after_a_pause(
    crowd: tuple[TenantCtx, dict[str, Any]],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant, _ = crowd
    broken = MemberFrames("postgresql://nobody@127.0.0.1:1/none", 0, 1_000)
    async with runtime.read_sessions() as session:
        assert await broken.current(session, tenant.tenant_id) is None
        await broken.wait_loaded()
        assert "loading the customer frame" in caplog.text
        assert await broken.current(session, tenant.tenant_id) is None
        assert not broken._loading  # not again at once
        monkeypatch.setattr(member_frames, "RETRY_SECONDS", 0)
        assert await broken.current(session, tenant.tenant_id) is None
        assert broken._loading  # tried again after the pause
    await broken.close()


async def test_a_tenant_without_orders_tags_or_customers_gets_a_frame(
    client: Any, runtime: Runtime, frames: MemberFrames, now: datetime
) -> None:
    tenant = await TenantFactory(client, runtime).create()
    actor = Principal(tenant.tenant_id, uuid.uuid4(), Role.analyst, "test")
    trees = [
        cond("tags", "is_null", True),
        {"ordered": {"category": "茶", "within_days": 30}},
        {"not": {"ordered": {"min_times": 2}}},
    ]
    for expected in (0, 2):
        if expected:
            await tenant.customer(display_name="甲")
            await tenant.customer(display_name="乙")
        await _loaded(frames, runtime, tenant.tenant_id)
        for tree in trees:
            async with runtime.read_sessions() as session:
                result = await saved.preview(session, actor, tree, NOW, 5, None, frames=frames)
            assert result.from_memory
            assert result.count == (0 if "ordered" in tree else expected), tree


def test_list_fields_nobody_has_a_value_of_become_empty_masks() -> None:
    people = pl.DataFrame(
        {
            name: [[], None, ["vip"] if name == "tags" else []]
            for name in ("tags", "platforms", "shops", "categories")
        },
        schema={name: pl.List(pl.String) for name in ("tags", "platforms", "shops", "categories")},
    )
    masked, masks = member_frames._as_masks(people)
    assert masks == {"tags": {"vip": 1}, "platforms": {}, "shops": {}, "categories": {}}
    assert masked["categories"].to_list() == [0, None, 0]
    assert masked["tags"].to_list() == [0, None, 1]


def test_id_halves_order_as_the_uuid_bytes() -> None:
    rng = random.Random(5)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(2000)]
    ids += [
        uuid.UUID(int=0),
        uuid.UUID(int=2**128 - 1),
        uuid.UUID(int=2**127),
        uuid.UUID(int=2**63),
    ]
    assert sorted(ids, key=lambda u: u.bytes) == sorted(ids, key=id_halves)
    assert all(-(2**63) <= half < 2**63 for u in ids for half in id_halves(u))

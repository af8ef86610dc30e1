"""Importing marketplace exports through the API: every sample set ends in its truth.json."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from app.runtime import Runtime
from tests.conftest import RunJobs
from tests.factories import TenantCtx, TenantFactory
from tests.imports.helpers import (
    SETS,
    import_files,
    order_rows,
    sample_files,
    status_counts,
    table_snapshot,
    truth,
    upload,
)


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create()


async def _rejections(tenant: TenantCtx, import_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = (
            await tenant.request("GET", f"/api/v1/imports/{import_id}/rejections", params=params)
        ).json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


@pytest.mark.parametrize("sample_set", SETS)
async def test_sample_set_imports_to_its_truth(
    sample_set: str, tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime
) -> None:
    expected = truth(sample_set)
    tmall_shop, pdd_shop = await tenant.shop("tmall"), await tenant.shop("pinduoduo")
    tmall = await import_files(
        tenant, run_jobs, sample_files(sample_set, "tmall"), "tmall", tmall_shop["id"]
    )
    pdd = await import_files(
        tenant, run_jobs, sample_files(sample_set, "pdd"), "pinduoduo", pdd_shop["id"]
    )
    for imported, shop, key in ((tmall, tmall_shop, "tmall"), (pdd, pdd_shop, "pdd")):
        want = expected["platforms"][key]
        rows = await order_rows(runtime, tenant.tenant_id, shop["id"])
        assert len(rows) == want["distinct_orders"]
        assert imported["counts"]["orders_created"] == want["distinct_orders"]
        assert status_counts(rows) == want["final_status_counts"]
        assert dict(Counter(r["raw_status"] for r in rows)) == want["final_raw_status_counts"]
        paid: Counter[str] = Counter()
        for r in rows:
            paid[r["status"]] += r["paid_fen"]
        assert {s: paid[s] for s in want["paid_total_fen_by_status"]} == want[
            "paid_total_fen_by_status"
        ]
        assert sum(r["lines"] for r in rows) == want["item_lines"]
        keys = {r["buyer_key"] for r in rows if r["buyer_key"]}
        assert len(keys) == (want["distinct_identity_keys"] or 0)
        customers = {r["customer_id"] for r in rows if r["customer_id"]}
        people = want.get("distinct_identity_keys_with_region") or want["distinct_identity_keys"]
        assert len(customers) == (people or 0)
        anonymous = want["distinct_orders"] if not want["distinct_identity_keys"] else 0
        assert sum(1 for r in rows if r["customer_id"] is None) == anonymous
        assert imported["counts"]["rejected"] == want["rejected_records"]
        listed = await _rejections(tenant, imported["id"])
        assert sorted((r["file"].split("/")[-1], r["line"], r["reason"]) for r in listed) == sorted(
            (r["file"].split("/")[-1], r["line"], r["reason"]) for r in want["rejections"]
        )
    suggestions = (await tenant.request("GET", "/api/v1/merge-suggestions")).json()["items"]
    assert len(suggestions) == (expected["cross_platform"]["expected_merge_suggestions"] or 0)


async def test_reimport_changes_nothing(
    tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime
) -> None:
    shop = await tenant.shop("tmall")
    files = sample_files(SETS[0], "tmall")
    await import_files(tenant, run_jobs, files, "tmall", shop["id"])
    before = await table_snapshot(runtime, tenant.tenant_id)
    again = await import_files(tenant, run_jobs, files, "tmall", shop["id"])
    counts = again["counts"]
    assert counts["orders_created"] == counts["orders_updated"] == 0
    assert counts["customers_created"] == 0
    assert counts["items_written"] == 0
    assert await table_snapshot(runtime, tenant.tenant_id) == before


async def test_reexport_updates_only_changed_orders(
    tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime
) -> None:
    want = truth(SETS[0])["platforms"]["tmall"]["reexport"]
    shop = await tenant.shop("tmall")
    lists = sample_files(SETS[0], "tmall")
    first = [p for p in lists if "20240630" in p.name]
    second = [p for p in lists if "20240714" in p.name]
    await import_files(tenant, run_jobs, first, "tmall", shop["id"])
    before = {r["order_no"]: r for r in await order_rows(runtime, tenant.tenant_id, shop["id"])}
    later = await import_files(tenant, run_jobs, second, "tmall", shop["id"])
    assert later["counts"]["orders_created"] == want["new"]
    assert later["counts"]["orders_updated"] == want["changed"]
    assert later["counts"]["orders_unchanged"] == want["unchanged"]
    after = {r["order_no"]: r for r in await order_rows(runtime, tenant.tenant_id, shop["id"])}
    changed = {n for n in before if after[n]["updated_at"] != before[n]["updated_at"]}
    assert len(changed) == want["changed"]
    moves = Counter(f"{before[n]['status']} -> {after[n]['status']}" for n in changed)
    assert dict(moves) == want["transitions"]


async def test_older_export_after_newer_changes_nothing(
    tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime
) -> None:
    shop = await tenant.shop("tmall")
    files = sample_files(SETS[0], "tmall")
    await import_files(tenant, run_jobs, files, "tmall", shop["id"])
    before = await table_snapshot(runtime, tenant.tenant_id)
    older = sample_files(SETS[0], "tmall", ".xlsx")
    again = await import_files(tenant, run_jobs, older, "tmall", shop["id"])
    assert again["counts"]["orders_created"] == again["counts"]["orders_updated"] == 0
    assert again["counts"]["orders_stale"] > 0
    assert await table_snapshot(runtime, tenant.tenant_id) == before


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
async def test_any_file_order_gives_the_same_final_state(
    order: str, tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime
) -> None:
    expected = truth(SETS[0])["platforms"]["pdd"]["final_status_counts"]
    shop = await tenant.shop("pinduoduo")
    files = sample_files(SETS[0], "pdd")
    for path in reversed(files) if order == "newest_first" else files:
        await import_files(tenant, run_jobs, [path], "pinduoduo", shop["id"])
    assert status_counts(await order_rows(runtime, tenant.tenant_id, shop["id"])) == expected


async def test_dry_run_counts_and_writes_nothing(
    tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime
) -> None:
    shop = await tenant.shop("pinduoduo")
    response = await upload(tenant, sample_files(SETS[0], "pdd"), "pinduoduo", shop["id"], True)
    assert response.status_code == 202, response.text
    await run_jobs()
    done = (await tenant.request("GET", response.headers["location"])).json()
    assert done["status"] == "succeeded"
    assert done["dry_run"] is True
    assert done["counts"]["orders_created"] == truth(SETS[0])["platforms"]["pdd"]["distinct_orders"]
    stored = await table_snapshot(runtime, tenant.tenant_id)
    assert stored["orders"] == stored["customers"] == []
    assert (await _rejections(tenant, done["id"])) == []


async def test_wrong_platform_is_refused_at_once(tenant: TenantCtx) -> None:
    shop = await tenant.shop("pinduoduo")
    tmall_list = sample_files(SETS[0], "tmall")[:1]
    response = await upload(tenant, tmall_list, "pinduoduo", shop["id"])
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["loc"] == ["body", "files", 0]
    assert body["code"] == "platform_mismatch"
    assert (await tenant.request("GET", "/api/v1/imports")).json()["items"] == []


async def test_missing_columns_are_listed(tenant: TenantCtx, tmp_path: Any) -> None:
    shop = await tenant.shop("pinduoduo")
    source = sample_files(SETS[0], "pdd")[0]
    lines = source.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in {"订单状态", "用户实付金额(元)"}]
    broken = tmp_path / source.name
    broken.write_text(
        "\n".join(",".join(h for i, h in enumerate(header) if i in keep) for _ in [0]) + "\n",
        encoding="utf-8-sig",
    )
    response = await upload(tenant, [broken], "pinduoduo", shop["id"])
    assert response.status_code == 422, response.text
    assert set(response.json()["missing_columns"]) >= {"订单状态"}


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, None),
        (b"just one line of prose without commas\n", "not_a_table"),
    ],
)
async def test_bad_files_are_refused(
    tenant: TenantCtx, tmp_path: Any, content: bytes, code: str | None
) -> None:
    shop = await tenant.shop("tmall")
    path = tmp_path / "ExportOrderList202406301830.csv"
    path.write_bytes(content)
    response = await upload(tenant, [path], "tmall", shop["id"])
    assert response.status_code == 422, response.text
    if code:
        assert response.json()["code"] == code


async def test_truncated_file_fails_the_job_and_writes_nothing(
    tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime, tmp_path: Any
) -> None:
    shop = await tenant.shop("pinduoduo")
    source = sample_files(SETS[0], "pdd")[0]
    data = source.read_bytes()
    cut = tmp_path / source.name
    cut.write_bytes(data[: data.index(b"\n", len(data) // 2) + 1] + b'"240601-1,unterminated')
    response = await upload(tenant, [cut], "pinduoduo", shop["id"])
    assert response.status_code == 202
    await run_jobs()
    done = (await tenant.request("GET", response.headers["location"])).json()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "truncated"
    stored = await table_snapshot(runtime, tenant.tenant_id)
    assert stored["orders"] == []


async def test_upload_over_the_limit_is_413(
    tenant: TenantCtx, runtime: Runtime, tmp_path: Any
) -> None:
    shop = await tenant.shop("pinduoduo")
    limit = runtime.settings.max_upload_bytes
    runtime.settings.max_upload_bytes = 1000
    try:
        response = await upload(tenant, sample_files(SETS[0], "pdd")[:1], "pinduoduo", shop["id"])
    finally:
        runtime.settings.max_upload_bytes = limit
    assert response.status_code == 413


async def test_imports_of_another_tenant_are_not_found(
    tenant: TenantCtx, tenants: TenantFactory, run_jobs: RunJobs
) -> None:
    shop = await tenant.shop("pinduoduo")
    done = await import_files(
        tenant, run_jobs, sample_files(SETS[0], "pdd")[:1], "pinduoduo", shop["id"]
    )
    other = await tenants.create()
    assert (await other.request("GET", f"/api/v1/imports/{done['id']}")).status_code == 404
    assert (
        await other.request("GET", f"/api/v1/imports/{done['id']}/rejections")
    ).status_code == 404
    assert (await other.request("GET", "/api/v1/imports")).json()["items"] == []
    foreign = await upload(other, sample_files(SETS[0], "pdd")[:1], "pinduoduo", shop["id"])
    assert foreign.status_code == 422


async def test_roles_for_imports(tenant: TenantCtx, run_jobs: RunJobs) -> None:
    shop = await tenant.shop("pinduoduo")
    files = sample_files(SETS[0], "pdd")[:1]
    assert (await upload(tenant, files, "pinduoduo", shop["id"], role="agent")).status_code == 403
    assert (await upload(tenant, files, "pinduoduo", shop["id"], role="analyst")).status_code == 403
    accepted = await upload(tenant, files, "pinduoduo", shop["id"], role="importer")
    assert accepted.status_code == 202
    location = accepted.headers["location"]
    assert (await tenant.request("GET", location, role="analyst")).status_code == 200
    assert (await tenant.request("GET", location, role="agent")).status_code == 403


async def test_upload_with_idempotency_key_runs_once(
    tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime
) -> None:
    shop = await tenant.shop("pinduoduo")
    files = sample_files(SETS[0], "pdd")[:1]
    key = {"Idempotency-Key": "upload-1"}
    first = await upload(tenant, files, "pinduoduo", shop["id"], headers=key)
    again = await upload(tenant, files, "pinduoduo", shop["id"], headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    other_file = await upload(
        tenant, sample_files(SETS[0], "pdd")[1:], "pinduoduo", shop["id"], headers=key
    )
    assert other_file.status_code == 422
    await run_jobs()
    listed = (await tenant.request("GET", "/api/v1/imports")).json()["items"]
    assert [i["id"] for i in listed] == [first.json()["id"]]
    assert listed[0]["status"] == "succeeded"
    uploads = runtime.settings.data_dir / "uploads" / str(tenant.tenant_id)
    assert list(uploads.iterdir()) == []


async def test_a_first_export_whose_every_row_is_rejected_imports_nothing(
    tenant: TenantCtx, run_jobs: RunJobs, runtime: Runtime, tmp_path: Any
) -> None:
    """Into a shop without orders (the COPY path), with no order left to load."""
    shop = await tenant.shop("pinduoduo")
    source = sample_files(SETS[0], "pdd")[0]
    header = source.read_bytes().splitlines(keepends=True)[0]
    path = tmp_path / source.name
    path.write_bytes(header + b"240601-1,too,few,fields\r\n240601-2,too,few\r\n")
    done = await import_files(tenant, run_jobs, [path], "pinduoduo", shop["id"])
    assert done["counts"]["rejected"] == 2
    assert (done["counts"]["orders_created"], done["counts"]["customers_created"]) == (0, 0)
    stored = await table_snapshot(runtime, tenant.tenant_id)
    assert stored["orders"] == []
    assert stored["customers"] == []

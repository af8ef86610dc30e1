"""Helpers for import tests: sample sets, uploads through the API, reading what got stored."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.runtime import Runtime
from tests.factories import TenantCtx

SAMPLES = Path(__file__).parent / "samples"

SETS = ["set1-tmall2019-pdd2020", "set2-tmall2016-pdd2023"]


def truth(sample_set: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((SAMPLES / sample_set / "truth.json").read_text())
    return result


def sample_files(sample_set: str, folder: str, suffix: str = ".csv") -> list[Path]:
    return sorted(p for p in (SAMPLES / sample_set / folder).iterdir() if p.name.endswith(suffix))


async def upload(
    tenant: TenantCtx,
    paths: list[Path],
    platform: str,
    shop_id: str,
    dry_run: bool = False,
    role: str = "owner",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    data = {"platform": platform, "shop_id": shop_id, "dry_run": str(dry_run).lower()}
    return await tenant.request(
        "POST", "/api/v1/imports", role=role, files=files, data=data, headers=headers or {}
    )


async def import_files(
    tenant: TenantCtx, run_jobs: Any, paths: list[Path], platform: str, shop_id: str
) -> dict[str, Any]:
    """Upload, run the job, and return the finished import."""
    response = await upload(tenant, paths, platform, shop_id)
    assert response.status_code == 202, response.text
    await run_jobs()
    finished = await tenant.request("GET", response.headers["location"])
    body: dict[str, Any] = finished.json()
    assert body["status"] == "succeeded", body
    return body


async def table_snapshot(runtime: Runtime, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Every stored row of the tenant's order data, for before/after comparisons."""
    queries = {
        "orders": "SELECT * FROM orders WHERE tenant_id = :t ORDER BY id",
        "items": "SELECT * FROM order_items WHERE tenant_id = :t ORDER BY order_id, line_no",
        "customers": "SELECT * FROM customers WHERE tenant_id = :t ORDER BY id",
        "identities": "SELECT * FROM customer_identities WHERE tenant_id = :t ORDER BY id",
        "contacts": "SELECT * FROM customer_contacts WHERE tenant_id = :t ORDER BY id",
        "facts": "SELECT * FROM customer_facts WHERE tenant_id = :t ORDER BY customer_id",
        "suggestions": "SELECT * FROM merge_suggestions WHERE tenant_id = :t ORDER BY id",
    }
    async with runtime.sessions() as session:
        return {
            name: [dict(r._mapping) for r in (await session.execute(text(q), {"t": tenant_id}))]
            for name, q in queries.items()
        }


async def order_rows(runtime: Runtime, tenant_id: uuid.UUID, shop_id: str) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT o.*, (SELECT count(*) FROM order_items i WHERE i.tenant_id = o.tenant_id"
                " AND i.order_id = o.id) AS lines FROM orders o"
                " WHERE o.tenant_id = :t AND o.shop_id = :s"
            ),
            {"t": tenant_id, "s": uuid.UUID(shop_id)},
        )
        return [dict(r._mapping) for r in rows]


def status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(r["status"] for r in rows))

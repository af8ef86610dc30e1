"""Personal data at rest and in responses: encrypted, masked by role, reveals audited."""

from __future__ import annotations

import random
import subprocess

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag
from pgserver._commands import POSTGRES_BIN_PATH

from app.crypto import Vault, load_keys
from tests.factories import TenantCtx, TenantFactory, unique_mobile


@pytest.fixture
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create()


async def test_raw_tables_hold_no_plaintext_personal_data(
    tenant: TenantCtx, database_url: str
) -> None:
    phone = unique_mobile()
    customer = await tenant.customer(
        phones=[phone],
        emails=["secret.person@example.com"],
        addresses=[{"receiver_name": "隐私人", "street": "保密街 42 号", "phone": phone}],
    )
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT row_to_json(t)::text AS r FROM customer_contacts t WHERE customer_id = $1"
            " UNION ALL"
            " SELECT row_to_json(t)::text FROM customer_addresses t WHERE customer_id = $1",
            customer["id"],
        )
    finally:
        await conn.close()
    dumped = " ".join(r["r"] for r in rows)
    assert rows
    for secret in (phone, "secret.person", "隐私人", "保密街 42 号"):
        assert secret not in dumped


async def test_a_database_dump_contains_no_plaintext_phone(
    tenant: TenantCtx, database_url: str
) -> None:
    # Random digits: a counter-made number's tail ("00000042") also turns up in other data.
    phone = f"137{random.randrange(10_000_000, 100_000_000)}"
    await tenant.customer(phones=[phone], addresses=[{"phone": phone, "street": "某路 1 号"}])
    dump = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_dump"), "--data-only", database_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "customer_contacts" in dump
    assert phone not in dump
    assert phone[3:] not in dump


async def test_reveal_shows_clear_data_and_writes_an_audit_record(tenant: TenantCtx) -> None:
    phone = unique_mobile()
    customer = await tenant.customer(phones=[phone], emails=["x@example.com"])
    revealed = await tenant.request(
        "POST",
        f"/api/v1/customers/{customer['id']}/reveal",
        role="agent",
        json={"fields": ["phones"], "reason": "回访确认地址"},
        headers={"X-Request-ID": "req-reveal-1"},
    )
    assert revealed.status_code == 200
    assert revealed.json()["phones"] == [phone]
    assert revealed.json()["emails"] is None
    audit = (
        await tenant.request("GET", "/api/v1/audit-events", params={"resource_id": customer["id"]})
    ).json()["items"]
    assert len(audit) == 1
    event = audit[0]
    assert event["action"] == "reveal"
    assert event["role"] == "agent"
    assert event["fields"] == ["phones"]
    assert event["request_id"] == "req-reveal-1"
    assert event["details"] == {"reason": "回访确认地址"}
    agent_key = next(
        k for k in (await tenant.request("GET", "/api/v1/api-keys")).json() if k["role"] == "agent"
    )
    assert event["api_key_id"] == agent_key["id"]


@pytest.mark.parametrize("role", ["analyst", "importer"])
async def test_roles_without_reveal_right_get_403_and_leave_no_trace(
    tenant: TenantCtx, role: str
) -> None:
    customer = await tenant.customer()
    response = await tenant.request("POST", f"/api/v1/customers/{customer['id']}/reveal", role=role)
    assert response.status_code == 403
    audit = (await tenant.request("GET", "/api/v1/audit-events")).json()["items"]
    assert audit == []


async def test_only_managers_read_the_audit_trail(tenant: TenantCtx) -> None:
    for role in ("agent", "analyst", "importer"):
        response = await tenant.request("GET", "/api/v1/audit-events", role=role)
        assert response.status_code == 403
    assert (await tenant.request("GET", "/api/v1/audit-events", role="admin")).status_code == 200


async def test_ciphertext_is_bound_to_its_tenant(tenant: TenantCtx, tenants: TenantFactory) -> None:
    other = await tenants.create()
    vault = Vault(load_keys(tenant.client._transport.app.state.settings))  # type: ignore[attr-defined]
    blob = vault.encrypt(tenant.tenant_id, "13800000000")
    assert vault.decrypt(tenant.tenant_id, blob) == "13800000000"
    with pytest.raises(InvalidTag):
        vault.decrypt(other.tenant_id, blob)
    assert vault.lookup_hash(tenant.tenant_id, "phone", "1") != vault.lookup_hash(
        other.tenant_id, "phone", "1"
    )

"""API keys and roles: 401 without a valid key, 403 for a role that may not, keys shown once."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from app.errors import Unauthenticated
from app.runtime import Runtime
from app.services.auth import KeyVerifier, Principal
from tests.factories import TenantFactory


async def test_requests_without_a_key_get_401_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/customers")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "token", ["nonsense", "kz_" + "0" * 64 + "_secret", "kz_" + "g" * 64 + "_x"]
)
async def test_bad_keys_get_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/api/v1/customers", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_a_tampered_secret_is_refused(tenants: TenantFactory) -> None:
    tenant = await tenants.create()
    forged = tenant.owner_key[:-3] + ("aaa" if not tenant.owner_key.endswith("aaa") else "bbb")
    response = await tenant.client.get(
        "/api/v1/customers", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401


async def test_created_key_is_shown_once_and_listed_without_secret(tenants: TenantFactory) -> None:
    tenant = await tenants.create()
    created = await tenant.request(
        "POST", "/api/v1/api-keys", json={"name": "shop script", "role": "importer"}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("kz_")
    assert body["role"] == "importer"
    listed = (await tenant.request("GET", "/api/v1/api-keys")).json()
    assert {k["name"] for k in listed} >= {"shop script"}
    assert all("key" not in k for k in listed)
    assert body["key"] not in str(listed)


async def test_revoked_key_stops_working_at_once(tenants: TenantFactory) -> None:
    tenant = await tenants.create()
    created = (
        await tenant.request("POST", "/api/v1/api-keys", json={"name": "temp", "role": "agent"})
    ).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert (await tenant.client.get("/api/v1/customers", headers=headers)).status_code == 200
    revoked = await tenant.request("DELETE", f"/api/v1/api-keys/{created['id']}")
    assert revoked.json()["revoked_at"] is not None
    response = await tenant.client.get("/api/v1/customers", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize("role", ["agent", "analyst", "importer"])
async def test_only_owner_and_admin_manage_keys(tenants: TenantFactory, role: str) -> None:
    tenant = await tenants.create()
    response = await tenant.request(
        "POST", "/api/v1/api-keys", role=role, json={"name": "x", "role": "agent"}
    )
    assert response.status_code == 403
    assert (await tenant.request("GET", "/api/v1/api-keys", role=role)).status_code == 403


async def test_admin_cannot_mint_or_revoke_owner_keys(tenants: TenantFactory) -> None:
    tenant = await tenants.create()
    minted = await tenant.request(
        "POST", "/api/v1/api-keys", role="admin", json={"name": "boss", "role": "owner"}
    )
    assert minted.status_code == 403
    owner_keys = [
        k for k in (await tenant.request("GET", "/api/v1/api-keys")).json() if k["role"] == "owner"
    ]
    revoked = await tenant.request(
        "DELETE", f"/api/v1/api-keys/{owner_keys[0]['id']}", role="admin"
    )
    assert revoked.status_code == 403


async def test_a_key_cannot_revoke_itself(tenants: TenantFactory) -> None:
    tenant = await tenants.create()
    own = (await tenant.request("GET", "/api/v1/api-keys")).json()[0]
    response = await tenant.request("DELETE", f"/api/v1/api-keys/{own['id']}")
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        ("owner", 200, 201),
        ("admin", 200, 201),
        ("agent", 200, 201),
        ("analyst", 200, 403),
        ("importer", 403, 403),
    ],
)
async def test_customer_access_by_role(
    tenants: TenantFactory, role: str, read: int, write: int
) -> None:
    tenant = await tenants.create()
    assert (await tenant.request("GET", "/api/v1/customers", role=role)).status_code == read
    created = await tenant.request(
        "POST", "/api/v1/customers", role=role, json={"display_name": "角色测试"}
    )
    assert created.status_code == write


async def test_requests_that_find_a_key_expired_together_share_one_look_up(
    tenants: TenantFactory, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await tenants.create()
    verifier = KeyVerifier(runtime.engine, ttl=60)
    lookups = 0
    real_lookup = verifier._lookup

    async def counted(token: str) -> Principal:
        nonlocal lookups
        lookups += 1
        return await real_lookup(token)

    monkeypatch.setattr(verifier, "_lookup", counted)
    principals = await asyncio.gather(*(verifier.verify(tenant.owner_key) for _ in range(50)))
    assert lookups == 1
    assert {p.tenant_id for p in principals} == {tenant.tenant_id}
    await verifier.verify(tenant.owner_key)  # cached now
    assert lookups == 1

    bad = tenant.owner_key[:-3] + ("aaa" if not tenant.owner_key.endswith("aaa") else "bbb")
    results = await asyncio.gather(
        *(verifier.verify(bad) for _ in range(10)), return_exceptions=True
    )
    assert lookups == 2  # one shared failure, not cached
    assert all(isinstance(r, Unauthenticated) for r in results)
    with pytest.raises(Unauthenticated):
        await verifier.verify(bad)
    assert lookups == 3


async def test_a_look_up_begun_before_a_revocation_is_not_cached(
    tenants: TenantFactory, runtime: Runtime
) -> None:
    tenant = await tenants.create()
    verifier = KeyVerifier(runtime.engine, ttl=60)
    slow = asyncio.ensure_future(verifier.verify(tenant.owner_key))
    await asyncio.sleep(0)  # the look-up is under way when a key is revoked in this process
    verifier.forget(uuid.uuid4())
    await slow
    assert verifier._cache == {}  # its answer may predate the revocation: not trusted later
    await verifier.verify(tenant.owner_key)
    assert list(verifier._cache) == [tenant.owner_key]

"""Factories that build test data through the service layer and the HTTP API."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.runtime import Runtime
from app.services.auth import create_tenant

_counter = itertools.count(1)


def unique_mobile() -> str:
    """A plausible, never-repeated Chinese mobile number."""
    return f"139{next(_counter) % 100_000_000:08d}"


@dataclass
class TenantCtx:
    client: httpx.AsyncClient
    tenant_id: uuid.UUID
    owner_key: str
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str = "owner") -> dict[str, str]:
        key = self.owner_key if role == "owner" else self.keys[role]
        return {"Authorization": f"Bearer {key}"}

    async def key(self, role: str) -> dict[str, str]:
        """Headers for a key of this role, created through the API the first time."""
        if role != "owner" and role not in self.keys:
            response = await self.client.post(
                "/api/v1/api-keys",
                json={"name": f"{role} key", "role": role},
                headers=self.headers(),
            )
            assert response.status_code == 201, response.text
            self.keys[role] = response.json()["key"]
        return self.headers(role)

    async def request(
        self, method: str, url: str, role: str = "owner", **kwargs: Any
    ) -> httpx.Response:
        headers = {**(await self.key(role)), **kwargs.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def customer(self, **fields: Any) -> dict[str, Any]:
        body = {"display_name": "测试客户", "phones": [unique_mobile()], **fields}
        response = await self.request("POST", "/api/v1/customers", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def shop(self, platform: str = "tmall", **fields: Any) -> dict[str, Any]:
        body = {"platform": platform, "name": f"{platform} shop {next(_counter)}", **fields}
        response = await self.request("POST", "/api/v1/shops", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


class TenantFactory:
    def __init__(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        self.client, self.runtime = client, runtime

    async def create(self, name: str = "测试商家") -> TenantCtx:
        async with self.runtime.sessions() as session:
            tenant, issued = await create_tenant(session, name)
            await session.commit()
        return TenantCtx(self.client, tenant.id, issued.secret)

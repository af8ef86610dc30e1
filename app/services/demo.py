"""The demo tenant a newcomer gets on first start: shops, sample customers, imported orders."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.crypto import Vault, load_keys
from app.models import Import, Shop
from app.models.base import new_id, utcnow
from app.schemas.customers import AddressIn, CustomerCreate, IdentityIn
from app.schemas.shops import Platform, ShopCreate
from app.services import customers, shops
from app.services.auth import Principal, Role, create_tenant
from app.services.demo_exports import write_pdd_export, write_tmall_export
from app.services.imports.load import LoadTarget, Snapshot, load_snapshots
from app.services.imports.parse import SHANGHAI, parse_export
from app.services.segments.recompute import recompute_tenant
from app.services.segments.rules import thresholds

DEMO_ORDERS = 300

_SAMPLE_CUSTOMERS = [
    CustomerCreate(
        display_name="王小明",
        gender="male",
        province="浙江省",
        city="杭州市",
        district="西湖区",
        phones=["13812345678"],
        emails=["xiaoming@example.com"],
        addresses=[
            AddressIn(
                receiver_name="王小明",
                phone="13812345678",
                province="浙江省",
                city="杭州市",
                district="西湖区",
                street="文三路 100 号 3 幢 201",
                postal_code="310012",
                is_default=True,
            )
        ],
        tags=["vip", "回购"],
        identities=[IdentityIn(platform=Platform.tmall, buyer_key="tb0363247856")],
    ),
    CustomerCreate(
        display_name="李娜",
        gender="female",
        province="广东省",
        city="深圳市",
        district="南山区",
        phones=["0755-86001234", "13900001111"],
        tags=["门店"],
        identities=[IdentityIn(platform=Platform.offline, buyer_key="MEMBER-000123")],
    ),
    CustomerCreate(
        display_name="张伟",
        province="北京",
        city="北京市",
        district="朝阳区",
        phones=["15011112222"],
        tags=["拼团"],
        identities=[IdentityIn(platform=Platform.pinduoduo, buyer_key="张**|150****2222")],
    ),
]


async def seed_demo_tenant(session: AsyncSession, settings: Settings) -> str:
    tenant, issued = await create_tenant(session, "Demo 客栈")
    owner = Principal(tenant.id, issued.key.id, Role.owner, issued.key.name)
    vault = Vault(load_keys(settings))
    created = {}
    for platform, name in [
        (Platform.tmall, "Demo 天猫旗舰店"),
        (Platform.pinduoduo, "Demo 拼多多店"),
        (Platform.offline, "Demo 杭州门店"),
    ]:
        shop = await shops.create_shop(session, owner, ShopCreate(platform=platform, name=name))
        created[platform] = shop
    for customer in _SAMPLE_CUSTOMERS:
        await customers.create_customer(session, vault, owner, customer)
    await _import_demo_orders(session, vault, owner, created)
    # Scored at once, like after any import, so the RFM grid and lifecycle stages are there to
    # explore from the first minute (the import path queues this as a job).
    await recompute_tenant(session, tenant.id, utcnow(), await thresholds(session, tenant.id))
    return issued.secret


async def _import_demo_orders(
    session: AsyncSession, vault: Vault, owner: Principal, created: dict[Platform, Shop]
) -> None:
    """A few hundred orders per marketplace, imported from generated export files exported an
    hour ago (Shanghai time), so the analytics' default windows (last 30 days, last year) and
    the lifecycle stages show the demo's orders as recent."""
    now = utcnow()
    exported = (now.astimezone(SHANGHAI) - timedelta(hours=1)).replace(
        tzinfo=None, second=0, microsecond=0
    )
    with tempfile.TemporaryDirectory(prefix="kezhan-demo-") as folder:
        directory = Path(folder)
        exports = {
            Platform.tmall: write_tmall_export(
                directory, DEMO_ORDERS, seed=7, export_time=exported
            ),
            Platform.pinduoduo: write_pdd_export(
                directory, DEMO_ORDERS, seed=8, export_time=exported
            ),
        }
        for platform, export in exports.items():
            shop = created[platform]
            parsed = parse_export(export.files, platform.value)
            row = Import(
                tenant_id=owner.tenant_id,
                id=new_id(),
                kind="file",
                status="running",
                platform=platform.value,
                shop_id=shop.id,
                dry_run=False,
                files=[{"name": f.name, "bytes": f.stat().st_size} for f in export.files],
                rows_done=0,
                counts={},
                timings={},
                attempts=1,
                api_key_id=owner.key_id,
                created_at=now,
                started_at=now,
            )
            session.add(row)
            await session.flush()
            counts = await load_snapshots(
                session,
                vault,
                LoadTarget(owner.tenant_id, shop.id, shop.platform, row.id),
                [
                    Snapshot(p.export_time, p.orders, p.items, p.rejections, p.rows_read)
                    for p in parsed
                ],
                now,
            )
            row.status, row.counts, row.finished_at = "succeeded", counts.as_dict(), utcnow()
            row.rows_total = row.rows_done = counts.rows_read
            await session.flush()

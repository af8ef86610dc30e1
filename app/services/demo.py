"""The demo tenant a newcomer gets on first start: a shop per platform and sample customers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.crypto import Vault, load_keys
from app.schemas.customers import AddressIn, CustomerCreate, IdentityIn
from app.schemas.shops import Platform, ShopCreate
from app.services import customers, shops
from app.services.auth import Principal, Role, create_tenant

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
    for platform, name in [
        (Platform.tmall, "Demo 天猫旗舰店"),
        (Platform.pinduoduo, "Demo 拼多多店"),
        (Platform.offline, "Demo 杭州门店"),
    ]:
        await shops.create_shop(session, owner, ShopCreate(platform=platform, name=name))
    for customer in _SAMPLE_CUSTOMERS:
        await customers.create_customer(session, vault, owner, customer)
    return issued.secret

"""Header names: normalisation, alias tables per platform and file kind, platform detection.

Headers are matched by name, never by position (format notes, section 5.2): spaces, tabs and
newlines are removed, full-width parentheses unified, then each canonical field takes the first
alias the file has. Unknown extra columns are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.services.imports.export import ExportFileError

Aliases = dict[str, tuple[str, ...]]

TMALL_LIST: Aliases = {
    "order_no": ("订单编号",),
    "buyer_key": ("买家会员名",),
    "raw_status": ("订单状态",),
    "close_reason": ("订单关闭原因",),
    "receiver_name": ("收货人姓名",),
    "address": ("收货地址",),
    "mobile": ("联系手机",),
    "phone": ("联系电话",),
    "goods_total": ("买家应付货款",),
    "shipping": ("买家应付邮费",),
    "total": ("总金额",),
    "paid": ("买家实际支付金额", "买家实付金额"),
    "received": ("打款商家金额", "确认收货打款金额"),
    "refund": ("退款金额",),
    "ordered_at": ("订单创建时间",),
    "paid_at": ("订单付款时间",),
    "shipped_at": ("发货时间",),
    "completed_at": ("确认收货时间",),
    "buyer_message": ("买家留言",),
    "seller_memo": ("订单备注", "商家备注"),
    "item_count": ("宝贝总数量",),
}
TMALL_ITEMS: Aliases = {
    "order_no": ("主订单编号", "订单编号"),
    "sub_order_no": ("子订单编号",),
    "title": ("标题", "商品标题", "宝贝标题"),
    "unit_price": ("价格", "商品价格"),
    "quantity": ("购买数量",),
    "sku": ("商品属性", "商品属性SKU", "商品规格"),
    "merchant_code": ("商家编码", "外部系统编号"),
    "product_id": ("商品ID", "商品id"),
    "raw_status": ("订单状态",),
    "paid": ("买家实际支付金额", "买家实付金额"),
    "refund_status": ("退款状态",),
    "refund": ("退款金额",),
}
PDD_ORDERS: Aliases = {
    "order_no": ("订单号",),
    "title": ("商品",),
    "raw_status": ("订单状态",),
    "after_sale_status": ("售后状态",),
    "goods_total": ("商品总价(元)",),
    "shipping": ("邮费(元)",),
    "shop_discount": ("店铺优惠折扣(元)",),
    "platform_discount": ("平台优惠折扣(元)",),
    "pay_discount": ("多多支付立减金额(元)",),
    "paid": ("用户实付金额(元)",),
    "received": ("商家实收金额(元)",),
    "quantity": ("商品数量(件)",),
    "receiver_name": ("收货人",),
    "receiver_phone": ("手机",),
    "province": ("省",),
    "city": ("市",),
    "district": ("区",),
    "street": ("街道", "街道/镇"),
    "ordered_at": ("订单成交时间", "支付时间"),
    "paid_at": ("支付时间",),
    "shipped_at": ("发货时间",),
    "completed_at": ("确认收货时间",),
    "product_id": ("商品id", "商品ID"),
    "sku": ("商品规格",),
    "merchant_code": ("商家编码-SKU维度", "商家编码-规格维度"),
    "buyer_message": ("买家留言",),
    "seller_memo": ("商家备注",),
}

REQUIRED: dict[str, tuple[str, ...]] = {
    "order_list": ("order_no", "raw_status", "paid", "ordered_at"),
    "order_items": ("order_no", "title", "quantity"),
    "orders": ("order_no", "raw_status", "paid"),
}
ALIASES: dict[str, Aliases] = {
    "order_list": TMALL_LIST,
    "order_items": TMALL_ITEMS,
    "orders": PDD_ORDERS,
}
PLATFORM_OF_KIND = {"order_list": "tmall", "order_items": "tmall", "orders": "pinduoduo"}
PLATFORM_NAMES = {
    "tmall": "tmall",
    "taobao": "tmall",
    "pinduoduo": "pinduoduo",
    "pdd": "pinduoduo",
}
KNOWN_HEADERS: frozenset[str] = frozenset(
    name for table in ALIASES.values() for names in table.values() for name in names
)
ID_HEADERS = frozenset({"订单编号", "订单号", "主订单编号", "子订单编号"})


def normalise(name: str) -> str:
    """`订单付款时间 ` -> `订单付款时间`; `商品总价（元）` -> `商品总价(元)`."""
    name = re.sub(r"\s+", "", name.replace("\ufeff", ""))
    return name.replace("（", "(").replace("）", ")")


def unique_names(cells: list[str]) -> list[str]:
    """Normalised header names; repeats and blanks get a suffix so every column has a name."""
    seen: dict[str, int] = {}
    names = []
    for i, cell in enumerate(cells):
        name = normalise(cell) or f"column_{i + 1}"
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(name if count == 0 else f"{name}#{count + 1}")
    return names


def looks_like_header(cells: list[str]) -> bool:
    names = {normalise(c) for c in cells}
    return bool(names & ID_HEADERS) and len(names & KNOWN_HEADERS) >= 3


@dataclass(frozen=True)
class Detected:
    platform: str
    kind: str
    layout: str
    fields: dict[str, str]  # canonical field -> header name in this file


def platform_name(declared: str | None) -> str | None:
    if declared is None:
        return None
    name = PLATFORM_NAMES.get(declared.strip().lower())
    if name is None:
        raise ExportFileError(
            "unknown_platform", f"unknown platform {declared!r}: use tmall or pinduoduo"
        )
    return name


def detect(header: list[str], file: str, declared: str | None, hint: str | None) -> Detected:
    """Platform, kind and layout from the header names; refuse contradictions and gaps."""
    names = set(header)
    kind = _kind_from_headers(names) or hint
    declared_platform = platform_name(declared)
    if kind is None:
        if declared_platform is None:
            raise ExportFileError(
                "unknown_layout", f"{file}: no known order export columns in the header", file
            )
        kind = "orders" if declared_platform == "pinduoduo" else "order_list"
    platform = PLATFORM_OF_KIND[kind]
    if declared_platform is not None and declared_platform != platform:
        raise ExportFileError(
            "platform_mismatch",
            f"{file}: the headers are a {platform} export, not {declared_platform}",
            file,
        )
    aliases = ALIASES[kind]
    fields = {
        field: next(name for name in candidates if name in names)
        for field, candidates in aliases.items()
        if any(name in names for name in candidates)
    }
    missing = [aliases[f][0] for f in REQUIRED[kind] if f not in fields]
    if missing:
        raise ExportFileError(
            "missing_columns",
            f"{file}: required columns missing: {', '.join(missing)}",
            file,
            missing,
        )
    return Detected(platform, kind, _layout(kind, names), fields)


def _kind_from_headers(names: set[str]) -> str | None:
    pdd_money = {"用户实付金额(元)", "商家实收金额(元)", "商品总价(元)"}
    if "订单号" in names and names & (pdd_money | {"售后状态", "商品数量(件)"}):
        return "orders"
    if names & pdd_money and not names & {"订单编号", "主订单编号"}:
        return "orders"
    list_only = {"买家会员名", "宝贝总数量", "收货人姓名", "总金额", "收货地址", "买家应付邮费"}
    if names & {"订单编号", "主订单编号"} and "购买数量" in names and not names & list_only:
        return "order_items"
    if "订单编号" in names or names & list_only:
        return "order_list"
    return None


def _layout(kind: str, names: set[str]) -> str:
    if kind == "order_items":
        return "tmall-detail-2021" if "主订单编号" in names else "tmall-detail-old"
    if kind == "orders":
        if "订单成交时间" in names:
            return "pdd-2023"
        return "pdd-2020" if "收货人" in names else "pdd-custom"
    if "支付单号" in names:
        return "tmall-2019"
    if "打款商家金额" in names or "新零售交易类型" in names:
        return "tmall-2018"
    return "tmall-2016" if "买家会员名" in names else "tmall-qianniu"


def kind_hint(file_name: str) -> str | None:
    """The file name is a hint only (sellers rename files); headers decide."""
    lower = file_name.lower()
    if "exportorderdetaillist" in lower:
        return "order_items"
    if "exportorderlist" in lower:
        return "order_list"
    if "orders_export" in lower:
        return "orders"
    return None

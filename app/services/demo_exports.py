"""Realistic marketplace export files of any size: Tmall list + detail pair and Pinduoduo orders.

Used for the demo tenant and the import benchmark. Rows are generated columnar with polars (a
seeded hash per column stands in for a random generator) and streamed to disk in chunks, so a
1,000,000-order pair needs a few hundred MB at most. Files follow the format notes: Tmall 2019
61-column list with `="..."` ids, `'` before phones, `元` suffixes, masked receivers, and the
10-column detail, GB18030 and CRLF; Pinduoduo 2020 55-column layout with trailing tabs, UTF-8
with BOM and LF. Buyers return (a skewed draw: a few buy dozens of times), a third of Tmall orders
hold several lines, statuses spread over the whole life of an order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

DEFAULT_EXPORT_TIME = datetime(2024, 6, 30, 18, 30)
CHUNK_ORDERS = 100_000

_TMALL_LIST_HEADER_TEXT = (
    "订单编号,买家会员名,买家支付宝账号,支付单号,支付详情,买家应付货款,"
    "买家应付邮费,买家支付积分,总金额,返点积分,买家实际支付金额,"
    "买家实际支付积分,订单状态,买家留言,收货人姓名,收货地址 ,运送方式,"
    "联系电话 ,联系手机,订单创建时间,订单付款时间 ,宝贝标题 ,宝贝种类 ,"
    "物流单号 ,物流公司,订单备注,宝贝总数量,店铺Id,店铺名称,订单关闭原因,"
    "卖家服务费,买家服务费,发票抬头,是否手机订单,分阶段订单信息,"
    "特权订金订单id,是否上传合同照片,是否上传小票,是否代付,定金排名,"
    "修改后的sku,修改后的收货地址,异常信息,天猫卡券抵扣,集分宝抵扣,"
    "是否是O2O交易,新零售交易类型,新零售导购门店名称,新零售导购门店id,"
    "新零售发货门店名称,新零售发货门店id,退款金额,预约门店,确认收货时间,"
    "打款商家金额,含应开票给个人的个人红包,是否信用购,体验期结束时间,前N有礼,"
    "配送类型,主订单编号"
)
TMALL_LIST_HEADER = _TMALL_LIST_HEADER_TEXT.split(",")
_TMALL_DETAIL_HEADER_TEXT = (
    "订单编号,标题,价格,购买数量,外部系统编号,商品属性,套餐信息,备注,订单状态,商家编码"
)
TMALL_DETAIL_HEADER = _TMALL_DETAIL_HEADER_TEXT.split(",")
_PDD_HEADER_TEXT = (
    "商品,订单号,订单状态,商品总价(元),店铺优惠折扣(元),平台优惠折扣(元),"
    "邮费(元),上门安装费(元),送货入户费(元),送货入户并安装费(元),"
    "用户实付金额(元),商家实收金额(元),商品数量(件),身份证姓名,身份证号码,"
    "收货人,手机,是否审核中,省,市,区,街道,支付时间,拼单成功时间,"
    "订单确认时间,承诺发货时间,发货时间,确认收货时间,商品id,商品规格,"
    "用户购买手机号,样式ID,商家编码-SKU维度,商家编码-商品维度,快递单号,"
    "快递公司,海淘清关订单号,支付ID,支付方式,是否抽奖或0元试用,是否顺丰加价,"
    "商家备注,售后状态,买家留言,关联货品编码,货品名称,货品类型,子货品,"
    "仓库名称,仓库所在地址,是否门店自提,门店名称,门店自定义编码,旅行类信息,"
    "消费者资料"
)
PDD_HEADER = _PDD_HEADER_TEXT.split(",")

PRODUCTS = [  # title, unit price (fen), merchant code, property text
    ("美逸充电宝20000毫安大容量快充便携移动电源", 9800, "MY-PB20K", "颜色分类：白色"),
    ("苹果数据线iPhone快充线2米加长", 1990, "MY-CB2M", "长度：2m;颜色分类：白色"),
    ("儿童保温杯316不锈钢吸管杯", 7900, "KB-316", "颜色分类：粉色;容量：400ml"),
    ("五常稻花香大米5kg新米", 6990, "RICE-WC5", "净含量：5kg"),
    ("纯棉短袖T恤女宽松2024新款夏季", 4900, "TS-W24", "颜色分类：白色;尺码：M"),
    ("手工辣条辣丝丝麻辣零食", 2890, "300400008", "规格：1袋"),
    ("日本直邮mamakids洗面奶+化妆水+乳液护肤套装", 59800, "MK-SET3", "套装"),
    ("接考横幅定制高考加油", 1780, "BANNER-01", "规格：无规格"),
    ("北欧风陶瓷马克杯带盖勺", 3590, "MUG-N1", "颜色分类：雾蓝"),
    ("加厚珊瑚绒毛毯冬季午睡毯", 12900, "BLK-200", "尺寸：150x200cm"),
    ("无线蓝牙耳机降噪运动款", 19900, "BT-EAR5", "颜色分类：黑色"),
    ("有机黑木耳干货250g", 3990, "MUER-250", "净含量：250g"),
]
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
)
NICK_PREFIXES = ["tb", "快乐购物", "猫咪不吃鱼", "晴天娃娃", "小熊爱吃糖", "sunny", "阿狸的小店铺"]
PLACES = [  # province, city, district, postal code
    ("北京", "北京市", "朝阳区", "100020"),
    ("上海", "上海市", "徐汇区", "200030"),
    ("广东省", "广州市", "天河区", "510620"),
    ("广东省", "深圳市", "南山区", "518052"),
    ("浙江省", "杭州市", "余杭区", "311100"),
    ("浙江省", "宁波市", "鄞州区", "315100"),
    ("江苏省", "南京市", "鼓楼区", "210009"),
    ("四川省", "成都市", "武侯区", "610041"),
    ("湖北省", "武汉市", "洪山区", "430070"),
    ("山东省", "青岛市", "市南区", "266071"),
    ("福建省", "福州市", "鼓楼区", "350001"),
    ("湖南省", "长沙市", "岳麓区", "410006"),
    ("河南省", "郑州市", "金水区", "450003"),
    ("新疆维吾尔自治区", "乌鲁木齐市", "天山区", "830002"),
    ("吉林省", "通化市", "柳河县", "135300"),
]
STREETS = [
    "建设路",
    "人民路",
    "中山路",
    "解放大道",
    "和平大街",
    "幸福小区",
    "光明街",
    "科技园",
    "五一路",
]
MESSAGES = [
    "",
    "",
    "",
    "",
    "",
    "",
    "放快递柜就好",
    "请尽快发货，谢谢",
    '要"加急"，周末前送到',
    "麻烦包装好一点,送人的",
    "到了打电话\n白天不在家",
]
# Raw Tmall statuses with their share (cumulative thresholds in thousandths).
TMALL_STATUSES = [
    ("等待买家付款", 30),
    ("交易关闭|买家未付款", 80),
    ("买家已付款，等待卖家发货", 130),
    ("卖家已发货，等待买家确认", 210),
    ("交易关闭|退款", 260),
    ("交易成功|部分退款", 300),
    ("交易成功", 1000),
]
PDD_STATUSES = [
    ("待发货|无售后或售后取消", 50),
    ("已发货，待签收|无售后或售后取消", 130),
    ("已取消|无售后或售后取消", 170),
    ("未发货，退款成功|退款成功", 220),
    ("已发货，退款成功|退款成功", 250),
    ("已签收，退款成功|退款成功", 270),
    ("已签收|售后处理中", 300),
    ("已签收|无售后或售后取消", 1000),
]


@dataclass
class GeneratedExport:
    """What was written: the files and the facts a parser must find in them."""

    files: list[Path]
    orders: int = 0
    items: int = 0
    buyers: set[str] = field(default_factory=set, repr=False)
    raw_status_counts: Counter[str] = field(default_factory=Counter)
    paid_total_fen: int = 0

    @property
    def distinct_buyers(self) -> int:
        return len(self.buyers)


def write_tmall_export(
    directory: Path,
    n_orders: int,
    seed: int = 0,
    *,
    export_time: datetime = DEFAULT_EXPORT_TIME,
    days: int = 90,
    encoding: str = "gb18030",
    chunk_orders: int = CHUNK_ORDERS,
) -> GeneratedExport:
    """ExportOrderList<time>.csv + ExportOrderDetailList<time>.csv with `n_orders` orders."""
    stamp = export_time.strftime("%Y%m%d%H%M")
    list_path = directory / f"ExportOrderList{stamp}.csv"
    detail_path = directory / f"ExportOrderDetailList{stamp}.csv"
    result = GeneratedExport([list_path, detail_path])
    with list_path.open("wb") as list_file, detail_path.open("wb") as detail_file:
        list_file.write((",".join(TMALL_LIST_HEADER) + "\r\n").encode(encoding))
        detail_file.write((",".join(TMALL_DETAIL_HEADER) + "\r\n").encode(encoding))
        for start in range(0, n_orders, chunk_orders):
            end = min(n_orders, start + chunk_orders)
            orders, items = _tmall_chunk(start, end, n_orders, seed, export_time, days)
            list_file.write(_csv_text(orders, TMALL_LIST_HEADER, "\r\n").encode(encoding))
            detail_file.write(_csv_text(items, TMALL_DETAIL_HEADER, "\r\n").encode(encoding))
            _count(result, orders, items.height, "买家会员名", "订单状态", "paid_fen")
    return result


def write_pdd_export(
    directory: Path,
    n_orders: int,
    seed: int = 0,
    *,
    export_time: datetime = DEFAULT_EXPORT_TIME,
    days: int = 90,
    encoding: str = "utf-8-sig",
    chunk_orders: int = CHUNK_ORDERS,
) -> GeneratedExport:
    """`<32 hex>orders_export<yyyy-MM-dd>.csv` (2020 layout) with `n_orders` orders."""
    prefix = f"{(seed * 2654435761 + 0x5DEECE66D) % 16**32:032x}"
    path = directory / f"{prefix}orders_export{export_time:%Y-%m-%d}.csv"
    result = GeneratedExport([path])
    body_encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    with path.open("wb") as out:
        out.write((",".join(PDD_HEADER) + "\n").encode(encoding))
        for start in range(0, n_orders, chunk_orders):
            end = min(n_orders, start + chunk_orders)
            orders = _pdd_chunk(start, end, n_orders, seed, export_time, days)
            out.write(_csv_text(orders, PDD_HEADER, "\n").encode(body_encoding))
            _count(result, orders, orders.height, "buyer_key", "订单状态", "paid_fen")
    return result


def _count(
    result: GeneratedExport, orders: pl.DataFrame, items: int, buyer: str, status: str, paid: str
) -> None:
    result.orders += orders.height
    result.items += items
    result.buyers.update(orders.get_column(buyer).unique().to_list())
    result.raw_status_counts.update(
        dict(orders.group_by(pl.col(status).str.strip_chars('"')).len().iter_rows())
    )
    result.paid_total_fen += int(orders.get_column(paid).sum())


def _csv_text(frame: pl.DataFrame, header: list[str], newline: str) -> str:
    columns = [pl.col(name) if name in frame.columns else pl.lit("") for name in header]
    line = pl.concat_str(columns, separator=",")
    text: str = frame.select(line.str.join(newline)).item()
    return text + newline


# --- columnar randomness --------------------------------------------------------------


def _rand(seed: int, salt: int, key: str = "i") -> pl.Expr:
    """A uniform UInt64 per row, reproducible from (seed, salt, key value)."""
    return pl.col(key).hash(seed * 1_000_003 + salt)


def _unit(seed: int, salt: int, key: str = "i") -> pl.Expr:
    return (_rand(seed, salt, key) % 1_000_000).cast(pl.Float64) / 1_000_000


def _pick(values: list[str], seed: int, salt: int, key: str = "i") -> pl.Expr:
    index = (_rand(seed, salt, key) % len(values)).cast(pl.Int64)
    return index.replace_strict(dict(enumerate(values)), return_dtype=pl.String)


def _money(fen: pl.Expr) -> pl.Expr:
    return pl.format("{}.{}", fen // 100, (fen % 100).cast(pl.String).str.zfill(2))


def _quoted(text: pl.Expr) -> pl.Expr:
    return pl.lit('"') + text.str.replace_all('"', '""', literal=True) + pl.lit('"')


def _time(at: pl.Expr) -> pl.Expr:
    return at.dt.strftime("%Y-%m-%d %H:%M:%S")


def _status(table: list[tuple[str, int]], unit: pl.Expr) -> pl.Expr:
    per_mille = (unit * 1000).cast(pl.Int64)
    expr = pl.when(per_mille < table[0][1]).then(pl.lit(table[0][0]))
    for name, bound in table[1:]:
        expr = expr.when(per_mille < bound).then(pl.lit(name))  # type: ignore[assignment]
    return expr.otherwise(pl.lit(table[-1][0]))


def _people(frame: pl.DataFrame, n_orders: int, seed: int) -> pl.DataFrame:
    """Buyer of each order (skewed: returning buyers) and the buyer's stable personal data."""
    buyers = max(1, n_orders // 3)
    return (
        frame.with_columns((_unit(seed, 1) ** 2.5 * buyers).cast(pl.Int64).alias("buyer"))
        .with_columns(
            pl.concat_str(
                _pick(NICK_PREFIXES, seed, 2, "buyer"),
                ((pl.col("buyer") * 7919 + seed) % 10**10).cast(pl.String).str.zfill(10),
            ).alias("nick"),
            (_pick(SURNAMES, seed, 3, "buyer") + pl.lit("**")).alias("masked_name"),
            pl.format(
                "1{}{}****{}",
                _pick(["3", "5", "7", "8", "9"], seed, 4, "buyer"),
                (_rand(seed, 5, "buyer") % 10).cast(pl.String),
                (_rand(seed, 6, "buyer") % 10000).cast(pl.String).str.zfill(4),
            ).alias("masked_phone"),
            (_rand(seed, 7, "buyer") % len(PLACES)).cast(pl.Int64).alias("place"),
            (_pick(STREETS, seed, 8, "buyer") + pl.lit("****")).alias("street"),
        )
        .with_columns(
            *(
                pl.col("place")
                .replace_strict(dict(enumerate(p[k] for p in PLACES)), return_dtype=pl.String)
                .alias(name)
                for k, name in enumerate(("province", "city", "district", "zip"))
            )
        )
    )


def _tmall_chunk(
    start: int, end: int, total: int, seed: int, export_time: datetime, days: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    frame = pl.DataFrame({"i": pl.int_range(start, end, eager=True, dtype=pl.Int64)})
    frame = _people(frame, total, seed)
    base = (1 + seed % 8) * 10**18 + (seed // 8 % 10**6) * 10**12
    frame = frame.with_columns(
        (pl.lit(base) + (pl.col("i") * 7_919_993 + 12345) % 10**12).cast(pl.String).alias("no"),
        _status(TMALL_STATUSES, _unit(seed, 10)).alias("state"),
        pl.when(_unit(seed, 11) < 0.7)
        .then(1)
        .when(_unit(seed, 11) < 0.9)
        .then(2)
        .otherwise(3)
        .alias("lines"),
        _pick(MESSAGES, seed, 12).alias("message"),
    )
    items = (
        frame.select("i", "no", "state", pl.int_ranges(0, "lines").alias("line"))
        .explode("line")
        .with_columns((pl.col("i") * 4 + pl.col("line")).alias("k"))
        .with_columns(
            # distinct products within an order (5 is coprime with the catalogue size)
            ((_rand(seed, 13) % len(PRODUCTS)).cast(pl.Int64) + 5 * pl.col("line"))
            .mod(len(PRODUCTS))
            .alias("product"),
            pl.when(_unit(seed, 14, "k") < 0.8).then(1).otherwise(2).alias("qty"),
        )
        .with_columns(
            pl.col("product")
            .replace_strict({i: p[1] for i, p in enumerate(PRODUCTS)}, return_dtype=pl.Int64)
            .alias("price"),
            *(
                pl.col("product")
                .replace_strict({i: p[k] for i, p in enumerate(PRODUCTS)}, return_dtype=pl.String)
                .alias(name)
                for k, name in ((0, "title"), (2, "code"), (3, "props"))
            ),
        )
    )
    sums = items.group_by("i").agg(
        (pl.col("price") * pl.col("qty")).sum().alias("goods"),
        pl.col("qty").sum().alias("pieces"),
        pl.col("title").str.join("，").alias("titles"),
    )
    state = pl.col("state")
    unpaid = state.is_in(["等待买家付款", "交易关闭|买家未付款"])
    recent = state.is_in(["等待买家付款", "买家已付款，等待卖家发货"])
    age_days = (
        pl.when(recent)
        .then(0.05 + _unit(seed, 15) * 2)
        .when(state == "卖家已发货，等待买家确认")
        .then(0.05 + _unit(seed, 15) * 8)
        .otherwise(10 + _unit(seed, 15) * (days - 10))
    )
    created = pl.lit(export_time) - pl.duration(seconds=(age_days * 86400).cast(pl.Int64))
    frame = (
        frame.join(sums, on="i")
        .sort("i")
        .with_columns(
            pl.when(_unit(seed, 16) < 0.1).then(1000).otherwise(0).alias("shipping"),
            created.alias("created"),
        )
    )
    frame = frame.with_columns(
        pl.when(unpaid).then(0).otherwise(pl.col("goods") + pl.col("shipping")).alias("paid_fen"),
        (
            pl.col("created") + pl.duration(seconds=(60 + _rand(seed, 17) % 1800).cast(pl.Int64))
        ).alias("paid_time"),
    ).with_columns(
        pl.when(state == "交易关闭|退款")
        .then(pl.col("paid_fen"))
        .when(state == "交易成功|部分退款")
        .then(pl.col("paid_fen") * (10 + _rand(seed, 18) % 40).cast(pl.Int64) // 100)
        .otherwise(0)
        .alias("refund"),
    )
    success = state.str.starts_with("交易成功")
    raw_status = state.str.split("|").list.first()
    reason = (
        pl.when(state == "交易关闭|买家未付款")
        .then(pl.lit("买家未付款"))
        .when(state == "交易关闭|退款")
        .then(pl.lit("退款"))
        .otherwise(pl.lit("订单未关闭"))
    )
    wrapped_no = pl.format('="{}"', pl.col("no"))
    shipped = state.is_in(["卖家已发货，等待买家确认"]) | success | (state == "交易关闭|退款")
    orders = frame.select(
        pl.col("nick").alias("买家会员名"),
        pl.col("paid_fen"),
        wrapped_no.alias("订单编号"),
        wrapped_no.alias("主订单编号"),
        pl.col("masked_phone").alias("买家支付宝账号"),
        pl.when(unpaid)
        .then(pl.lit(""))
        .otherwise(
            pl.format(
                '="{}22001{}"',
                pl.col("created").dt.strftime("%Y%m%d"),
                pl.col("no").str.slice(0, 15),
            )
        )
        .alias("支付单号"),
        _money(pl.col("goods")).alias("买家应付货款"),
        _money(pl.col("shipping")).alias("买家应付邮费"),
        pl.lit("0").alias("买家支付积分"),
        _money(pl.col("goods") + pl.col("shipping")).alias("总金额"),
        pl.lit("0").alias("返点积分"),
        _money(pl.col("paid_fen")).alias("买家实际支付金额"),
        pl.lit("0").alias("买家实际支付积分"),
        _quoted(raw_status).alias("订单状态"),
        _quoted(pl.col("message")).alias("买家留言"),
        _quoted(pl.col("masked_name")).alias("收货人姓名"),
        _quoted(
            pl.format(
                "{} {} {} {}({})",
                "province",
                "city",
                "district",
                "street",
                "zip",
            )
        ).alias("收货地址 "),
        pl.lit('"快递"').alias("运送方式"),
        (pl.lit("'") + pl.col("masked_phone")).alias("联系手机"),
        _time(pl.col("created")).alias("订单创建时间"),
        pl.when(unpaid)
        .then(pl.lit(""))
        .otherwise(_time(pl.col("paid_time")))
        .alias("订单付款时间 "),
        _quoted(pl.col("titles")).alias("宝贝标题 "),
        pl.col("lines").cast(pl.String).alias("宝贝种类 "),
        pl.when(shipped)
        .then(pl.format('"No:7{}"', pl.col("no").str.slice(4, 12)))
        .otherwise(pl.lit(""))
        .alias("物流单号 "),
        pl.when(shipped).then(pl.lit('"中通快递"')).otherwise(pl.lit("")).alias("物流公司"),
        pl.col("pieces").cast(pl.String).alias("宝贝总数量"),
        pl.lit("112233445").alias("店铺Id"),
        pl.lit('"客栈演示旗舰店"').alias("店铺名称"),
        _quoted(reason).alias("订单关闭原因"),
        pl.lit("0").alias("卖家服务费"),
        pl.lit('"0元"').alias("买家服务费"),
        pl.lit('"手机订单"').alias("是否手机订单"),
        _money(pl.col("refund")).alias("退款金额"),
        pl.when(success)
        .then(_time(pl.col("paid_time") + pl.duration(days=5)))
        .otherwise(pl.lit(""))
        .alias("确认收货时间"),
        _quoted(
            pl.when(success)
            .then(_money(pl.col("paid_fen") - pl.col("refund")))
            .otherwise(pl.lit("0.00"))
            + pl.lit("元")
        ).alias("打款商家金额"),
    )
    detail = items.select(
        pl.format('="{}"', pl.col("no")).alias("订单编号"),
        _quoted(pl.col("title")).alias("标题"),
        _money(pl.col("price")).alias("价格"),
        pl.col("qty").cast(pl.String).alias("购买数量"),
        _quoted(pl.col("props")).alias("商品属性"),
        _quoted(pl.col("state").str.split("|").list.first()).alias("订单状态"),
        _quoted(pl.col("code")).alias("商家编码"),
    )
    return orders, detail


def _pdd_chunk(
    start: int, end: int, total: int, seed: int, export_time: datetime, days: int
) -> pl.DataFrame:
    frame = pl.DataFrame({"i": pl.int_range(start, end, eager=True, dtype=pl.Int64)})
    frame = _people(frame, total, seed + 7)
    frame = frame.with_columns(
        _status(PDD_STATUSES, _unit(seed, 20)).alias("state"),
        (_rand(seed, 21) % len(PRODUCTS)).cast(pl.Int64).alias("product"),
        pl.when(_unit(seed, 22) < 0.85).then(1).otherwise(2).alias("qty"),
        _pick(MESSAGES, seed, 23).alias("message"),
    )
    state = pl.col("state")
    raw_status = state.str.split("|").list.first()
    after_sale = state.str.split("|").list.last()
    recent = raw_status.is_in(["待发货", "已发货，待签收", "未发货，退款成功"])
    age_days = (
        pl.when(raw_status == "已发货，待签收")
        .then(1.05 + _unit(seed, 24) * 5)
        .when(recent)
        .then(0.05 + _unit(seed, 24) * 2)
        .otherwise(8 + _unit(seed, 24) * (days - 8))
    )
    created = pl.lit(export_time) - pl.duration(seconds=(age_days * 86400).cast(pl.Int64))
    frame = frame.with_columns(
        created.alias("created"),
        pl.col("product")
        .replace_strict({i: p[1] for i, p in enumerate(PRODUCTS)}, return_dtype=pl.Int64)
        .alias("price"),
        *(
            pl.col("product")
            .replace_strict({i: p[k] for i, p in enumerate(PRODUCTS)}, return_dtype=pl.String)
            .alias(name)
            for k, name in ((0, "title"), (2, "code"), (3, "props"))
        ),
        pl.when(_unit(seed, 25) < 0.3).then(300).otherwise(0).alias("shop_discount"),
        pl.when(_unit(seed, 26) < 0.2).then(100).otherwise(0).alias("platform_discount"),
    ).with_columns((pl.col("price") * pl.col("qty")).alias("goods"))
    cancelled = raw_status == "已取消"
    paid_fen = (
        pl.when(cancelled)
        .then(0)
        .otherwise(pl.col("goods") - pl.col("shop_discount") - pl.col("platform_discount"))
    )
    frame = frame.with_columns(
        paid_fen.alias("paid_fen"),
        pl.format(
            "{}-{}",
            pl.col("created").dt.strftime("%y%m%d"),
            ((pl.col("i") * 7_919_993 + seed * 104729) % 10**15).cast(pl.String).str.zfill(15),
        ).alias("no"),
        pl.concat_str(["masked_name", "masked_phone"], separator="|").alias("buyer_key"),
    )
    tab = pl.lit("\t")
    paid_time = pl.col("created")
    shipped = raw_status.str.starts_with("已发货") | raw_status.str.starts_with("已签收")
    signed = raw_status.str.starts_with("已签收")

    def timed(condition: pl.Expr, at: pl.Expr) -> pl.Expr:
        return pl.when(condition).then(_time(at) + tab).otherwise(pl.lit(""))

    return frame.select(
        "buyer_key",
        "paid_fen",
        _quoted(pl.col("title")).alias("商品"),
        (pl.col("no") + tab).alias("订单号"),
        _quoted(raw_status).alias("订单状态"),
        (_money(pl.col("goods")) + tab).alias("商品总价(元)"),
        (_money(pl.col("shop_discount")) + tab).alias("店铺优惠折扣(元)"),
        (_money(pl.col("platform_discount")) + tab).alias("平台优惠折扣(元)"),
        pl.lit("0.00\t").alias("邮费(元)"),
        pl.lit("0.00\t").alias("上门安装费(元)"),
        pl.lit("0.00\t").alias("送货入户费(元)"),
        pl.lit("0.00\t").alias("送货入户并安装费(元)"),
        (_money(pl.col("paid_fen")) + tab).alias("用户实付金额(元)"),
        (
            _money(pl.when(cancelled).then(0).otherwise(pl.col("goods") - pl.col("shop_discount")))
            + tab
        ).alias("商家实收金额(元)"),
        (pl.col("qty").cast(pl.String) + tab).alias("商品数量(件)"),
        _quoted(pl.col("masked_name")).alias("收货人"),
        pl.col("masked_phone").alias("手机"),
        pl.lit('"否"').alias("是否审核中"),
        _quoted(pl.col("province")).alias("省"),
        _quoted(pl.col("city")).alias("市"),
        _quoted(pl.col("district")).alias("区"),
        _quoted(pl.col("street")).alias("街道"),
        timed(~cancelled, paid_time).alias("支付时间"),
        timed(~cancelled, paid_time + pl.duration(minutes=15)).alias("拼单成功时间"),
        timed(~cancelled, paid_time + pl.duration(minutes=16)).alias("订单确认时间"),
        timed(~cancelled, paid_time + pl.duration(days=2)).alias("承诺发货时间"),
        timed(shipped, paid_time + pl.duration(days=1)).alias("发货时间"),
        timed(signed, paid_time + pl.duration(days=4)).alias("确认收货时间"),
        pl.format("{}\t", 1005751284100 + pl.col("product")).alias("商品id"),
        _quoted(pl.col("props")).alias("商品规格"),
        _quoted(pl.col("code")).alias("商家编码-SKU维度"),
        _quoted(pl.col("code").str.split("-").list.first()).alias("商家编码-商品维度"),
        pl.lit('"多多支付"').alias("支付方式"),
        pl.lit('"否"').alias("是否抽奖或0元试用"),
        pl.lit('"否"').alias("是否顺丰加价"),
        _quoted(after_sale).alias("售后状态"),
        _quoted(pl.col("message")).alias("买家留言"),
        pl.lit('"否"').alias("是否门店自提"),
    )

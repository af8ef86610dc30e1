"""customer rollups kept by triggers, and a covering index for the sales overview

At 1,000,000 customers / 5,000,000 orders, geography, the RFM grid and the lifecycle stage
counts each joined a million customers with their facts or scores (0.7-1.2 s on an idle
machine). `customer_rollups` counts the live customers by province, city, RFM scores, group and
stage, with buyers and spend. Statement-level triggers with transition tables append each
statement's change as delta rows: a change to a customer's place or to whether they are live,
to their facts (bought or not, spent) or to their scores moves their contribution from one key
to another, using the current rows of the other two tables, so the sum over the rows of a key
is exact after every statement. Deleting a customer takes its contribution out before the row
goes (a row trigger: the cascade removes its facts and scores before a statement trigger on
`customers` would run, and their own triggers skip a customer that is gone).

The overview's window of orders (about 200,000 of them for 30 days) was fetched from some
94,000 heap pages; with its columns in the index on payment time it is read from the index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 14:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAID_AT_INCLUDE = ["status", "customer_id", "platform", "shop_id", "paid_fen", "refund_fen"]

_COLUMNS = "tenant_id, province, city, rfm_r, rfm_f, rfm_group, stage, customers, buyers, spent_fen"
# Keys are grouped in the "C" collation: a sort of 2M rows in the database's collation took
# 5.7 s of the 13 s a 1M-customer recompute spent in the scores trigger.
_KEY = "1, 2, 3, 4, 5, 6, 7"

# Two transactions changing different tables for the same customer (an import its facts, the
# recompute its scores, a user its city) would each compute their delta from the other's old
# row and together lose a move: the second must wait for the first to commit, and its next
# statement then sees what the first wrote. A statement of fewer than 10,000 rows takes the
# tenant's rollup lock shared and locks its customers (in id order: no deadlock between two of
# them; a change to `customers` holds the row already). A larger one (a recompute, a facts
# rebuild, a big import) takes the tenant's lock exclusively instead: locking a million
# customer rows cost 8 s at 1M customers, the advisory lock nothing.
_LARGE = 10_000

# Every live customer's contribution, from scratch (also what the tests compare against).
_BACKFILL_ROWS = f"""
INSERT INTO customer_rollups ({_COLUMNS})
SELECT c.tenant_id, c.province COLLATE "C", c.city COLLATE "C", s.rfm_r, s.rfm_f,
       s.rfm_group COLLATE "C", coalesce(s.lifecycle_stage, 'prospect') COLLATE "C", count(*),
       count(*) FILTER (WHERE f.order_count > 0), coalesce(sum(f.total_spent_fen), 0)
FROM customers c
LEFT JOIN customer_facts f ON f.tenant_id = c.tenant_id AND f.customer_id = c.id
LEFT JOIN customer_scores s ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
WHERE c.merged_into_id IS NULL"""
BACKFILL = f"{_BACKFILL_ROWS} GROUP BY {_KEY}"

# The tenant's rollup lock, the one place its key is spelled (app/services/rollups.py calls it).
LOCK_FUNCTION = """
CREATE FUNCTION customer_rollups_lock(tenant uuid, exclusive boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('customer_rollups:' || tenant, 0));
    ELSE
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('customer_rollups:' || tenant, 0));
    END IF;
END $$
"""

# Locks the tenants' rollups for a statement of n rows, and for a statement that changes at
# least half as many customers as the tenant has, rebuilds them from scratch instead (true: the
# caller has nothing left to do). A tenant being deleted keeps no rollups (true as well).
PREPARE_FUNCTION = f"""
CREATE FUNCTION customer_rollups_prepare(touched uuid[], n bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    live uuid[];
BEGIN
    SELECT array_agg(id ORDER BY id) INTO live FROM tenants WHERE id = ANY(touched);
    IF live IS NULL OR n = 0 THEN
        RETURN true;
    END IF;
    PERFORM customer_rollups_lock(t, n >= {_LARGE}) FROM unnest(live) t;
    IF n >= {_LARGE} AND n * 2 >= (SELECT coalesce(sum(customers), 0) FROM customer_rollups
                                   WHERE tenant_id = ANY(live)) THEN
        DELETE FROM customer_rollups WHERE tenant_id = ANY(live);
        {_BACKFILL_ROWS} AND c.tenant_id = ANY(live) GROUP BY {_KEY};
        RETURN true;
    END IF;
    RETURN false;
END $$
"""


def _prepare(rows: str) -> str:
    """Trigger body start: lock (or rebuild) for the statement's `rows` transition table."""
    return f"""
    SELECT array_agg(DISTINCT tenant_id), count(*) INTO tenants, n FROM {rows};
    IF customer_rollups_prepare(tenants, n) THEN
        RETURN NULL;
    END IF"""


def _lock(rows: str) -> str:
    """`_prepare`, then, for a small statement, its customers' rows in id order."""
    return f"""{_prepare(rows)};
    IF n < {_LARGE} THEN
        PERFORM FROM customers c
        WHERE (c.tenant_id, c.id) IN (SELECT tenant_id, customer_id FROM {rows})
        ORDER BY c.tenant_id, c.id
        FOR NO KEY UPDATE OF c;
    END IF"""


_DECLARE = """
DECLARE
    tenants uuid[];
    n bigint;"""

# A contribution's figures, signed, and the condition that it changes anything.
_FIGURES = """sum({sign}), sum({sign} * (coalesce(f.order_count, 0) > 0)::int),
           sum({sign} * coalesce(f.total_spent_fen, 0))"""
_ANY_CHANGE = """sum({sign}) <> 0 OR sum({sign} * (coalesce(f.order_count, 0) > 0)::int) <> 0
        OR sum({sign} * coalesce(f.total_spent_fen, 0)) <> 0"""


# d: (tenant_id, customer_id, province, city, sign) of live customers entering (+1) or leaving
# (-1) a place; their current facts and scores complete the key and the figures.
_FROM_CUSTOMERS = f"""
    INSERT INTO customer_rollups ({_COLUMNS})
    SELECT d.tenant_id, d.province COLLATE "C", d.city COLLATE "C", s.rfm_r, s.rfm_f,
           s.rfm_group COLLATE "C", coalesce(s.lifecycle_stage, 'prospect') COLLATE "C",
           {_FIGURES.format(sign="d.sign")}
    FROM (%s) d
    LEFT JOIN customer_facts f ON f.tenant_id = d.tenant_id AND f.customer_id = d.customer_id
    LEFT JOIN customer_scores s ON s.tenant_id = d.tenant_id AND s.customer_id = d.customer_id
    GROUP BY {_KEY}
    HAVING {_ANY_CHANGE.format(sign="d.sign")}
"""

_CUSTOMERS_INSERTED = """
            SELECT tenant_id, id AS customer_id, province, city, 1 AS sign
            FROM new_rows WHERE merged_into_id IS NULL"""
_CUSTOMERS_MOVED = """
            SELECT n.tenant_id, n.id AS customer_id, n.province, n.city, 1 AS sign
            FROM new_rows n JOIN old_rows o ON o.tenant_id = n.tenant_id AND o.id = n.id
            WHERE n.merged_into_id IS NULL
              AND (n.province, n.city, o.merged_into_id IS NULL)
                  IS DISTINCT FROM (o.province, o.city, true)
            UNION ALL
            SELECT o.tenant_id, o.id, o.province, o.city, -1
            FROM old_rows o JOIN new_rows n ON n.tenant_id = o.tenant_id AND n.id = o.id
            WHERE o.merged_into_id IS NULL
              AND (o.province, o.city, n.merged_into_id IS NULL)
                  IS DISTINCT FROM (n.province, n.city, true)"""
CUSTOMERS_FUNCTION = f"""
CREATE FUNCTION customer_rollups_customers() RETURNS trigger LANGUAGE plpgsql AS $${_DECLARE}
BEGIN
    -- The statement holds its customers' rows already: only the tenant's lock.
    {_prepare("new_rows")};
    IF TG_OP = 'INSERT' THEN
        {_FROM_CUSTOMERS % _CUSTOMERS_INSERTED};
    ELSE
        {_FROM_CUSTOMERS % _CUSTOMERS_MOVED};
    END IF;
    RETURN NULL;
END $$
"""

# A row trigger, BEFORE: the customer's facts and scores are still there. A customer deleted
# with its tenant is skipped: the tenant's rollups go with it.
CUSTOMER_DELETED_FUNCTION = f"""
CREATE FUNCTION customer_rollups_customer_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.merged_into_id IS NULL
       AND NOT customer_rollups_prepare(ARRAY[OLD.tenant_id], 1) THEN
        {
    _FROM_CUSTOMERS
    % '''
            SELECT OLD.tenant_id, OLD.id AS customer_id, OLD.province, OLD.city, -1 AS sign'''
};
    END IF;
    RETURN OLD;
END $$
"""

# d: (tenant_id, customer_id, b, m) of facts rows coming (+) and going (-); the customer's
# current place and scores give the key. A customer gone or merged away counts nothing.
_FROM_FACTS = f"""
    INSERT INTO customer_rollups ({_COLUMNS})
    SELECT c.tenant_id, c.province COLLATE "C", c.city COLLATE "C", s.rfm_r, s.rfm_f,
           s.rfm_group COLLATE "C", coalesce(s.lifecycle_stage, 'prospect') COLLATE "C", 0,
           sum(d.b), sum(d.m)
    FROM (%s) d
    JOIN customers c ON c.tenant_id = d.tenant_id AND c.id = d.customer_id
                    AND c.merged_into_id IS NULL
    LEFT JOIN customer_scores s ON s.tenant_id = d.tenant_id AND s.customer_id = d.customer_id
    GROUP BY {_KEY}
    HAVING sum(d.b) <> 0 OR sum(d.m) <> 0
"""
_FACTS_NEW = """
            SELECT tenant_id, customer_id, (order_count > 0)::int AS b, total_spent_fen AS m
            FROM new_rows"""
_FACTS_OLD = """
            SELECT tenant_id, customer_id, -(order_count > 0)::int AS b, -total_spent_fen AS m
            FROM old_rows"""

FACTS_FUNCTION = f"""
CREATE FUNCTION customer_rollups_facts() RETURNS trigger LANGUAGE plpgsql AS $${_DECLARE}
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_lock("new_rows")};
        {_FROM_FACTS % _FACTS_NEW};
    ELSIF TG_OP = 'UPDATE' THEN
        {_lock("new_rows")};
        {_FROM_FACTS % (_FACTS_NEW + " UNION ALL" + _FACTS_OLD)};
    ELSE
        {_lock("old_rows")};
        {_FROM_FACTS % _FACTS_OLD};
    END IF;
    RETURN NULL;
END $$
"""

# p: (tenant_id, customer_id, old key, new key) of customers whose key changes (no scores row:
# a prospect without scores); each leaves its old key and enters the new one with its current
# place, facts and spend: one look-up per customer.
_FROM_SCORES = f"""
    INSERT INTO customer_rollups ({_COLUMNS})
    SELECT c.tenant_id, c.province COLLATE "C", c.city COLLATE "C", k.rfm_r, k.rfm_f,
           k.rfm_group COLLATE "C", k.stage COLLATE "C", {_FIGURES.format(sign="k.sign")}
    FROM (%s) p
    JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id
                    AND c.merged_into_id IS NULL
    LEFT JOIN customer_facts f ON f.tenant_id = p.tenant_id AND f.customer_id = p.customer_id
    CROSS JOIN LATERAL (VALUES (p.o_r, p.o_f, p.o_g, p.o_s, -1), (p.n_r, p.n_f, p.n_g, p.n_s, 1))
        AS k(rfm_r, rfm_f, rfm_group, stage, sign)
    GROUP BY {_KEY}
    HAVING {_ANY_CHANGE.format(sign="k.sign")}
"""
_SCORES_INSERTED = """
            SELECT tenant_id, customer_id, NULL::smallint AS o_r, NULL::smallint AS o_f,
                   NULL::varchar AS o_g, 'prospect' AS o_s, rfm_r AS n_r, rfm_f AS n_f,
                   rfm_group AS n_g, coalesce(lifecycle_stage, 'prospect') AS n_s
            FROM new_rows"""
_SCORES_UPDATED = """
            SELECT n.tenant_id, n.customer_id, o.rfm_r AS o_r, o.rfm_f AS o_f,
                   o.rfm_group AS o_g, coalesce(o.lifecycle_stage, 'prospect') AS o_s,
                   n.rfm_r AS n_r, n.rfm_f AS n_f, n.rfm_group AS n_g,
                   coalesce(n.lifecycle_stage, 'prospect') AS n_s
            FROM new_rows n
            JOIN old_rows o ON o.tenant_id = n.tenant_id AND o.customer_id = n.customer_id
            WHERE (o.rfm_r, o.rfm_f, o.rfm_group, coalesce(o.lifecycle_stage, 'prospect'))
                  IS DISTINCT FROM
                  (n.rfm_r, n.rfm_f, n.rfm_group, coalesce(n.lifecycle_stage, 'prospect'))"""
_SCORES_DELETED = """
            SELECT tenant_id, customer_id, rfm_r AS o_r, rfm_f AS o_f, rfm_group AS o_g,
                   coalesce(lifecycle_stage, 'prospect') AS o_s, NULL::smallint AS n_r,
                   NULL::smallint AS n_f, NULL::varchar AS n_g, 'prospect' AS n_s
            FROM old_rows"""

SCORES_FUNCTION = f"""
CREATE FUNCTION customer_rollups_scores() RETURNS trigger LANGUAGE plpgsql AS $${_DECLARE}
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_lock("new_rows")};
        {_FROM_SCORES % _SCORES_INSERTED};
    ELSIF TG_OP = 'UPDATE' THEN
        {_lock("new_rows")};
        {_FROM_SCORES % _SCORES_UPDATED};
    ELSE
        {_lock("old_rows")};
        {_FROM_SCORES % _SCORES_DELETED};
    END IF;
    RETURN NULL;
END $$
"""

TRIGGERS = [
    ("customers_insert", "AFTER INSERT ON customers REFERENCING NEW TABLE AS new_rows "
     "FOR EACH STATEMENT", "customer_rollups_customers"),
    ("customers_update", "AFTER UPDATE ON customers REFERENCING OLD TABLE AS old_rows "
     "NEW TABLE AS new_rows FOR EACH STATEMENT", "customer_rollups_customers"),
    ("customers_delete", "BEFORE DELETE ON customers FOR EACH ROW",
     "customer_rollups_customer_deleted"),
    ("facts_insert", "AFTER INSERT ON customer_facts REFERENCING NEW TABLE AS new_rows "
     "FOR EACH STATEMENT", "customer_rollups_facts"),
    ("facts_update", "AFTER UPDATE ON customer_facts REFERENCING OLD TABLE AS old_rows "
     "NEW TABLE AS new_rows FOR EACH STATEMENT", "customer_rollups_facts"),
    ("facts_delete", "AFTER DELETE ON customer_facts REFERENCING OLD TABLE AS old_rows "
     "FOR EACH STATEMENT", "customer_rollups_facts"),
    ("scores_insert", "AFTER INSERT ON customer_scores REFERENCING NEW TABLE AS new_rows "
     "FOR EACH STATEMENT", "customer_rollups_scores"),
    ("scores_update", "AFTER UPDATE ON customer_scores REFERENCING OLD TABLE AS old_rows "
     "NEW TABLE AS new_rows FOR EACH STATEMENT", "customer_rollups_scores"),
    ("scores_delete", "AFTER DELETE ON customer_scores REFERENCING OLD TABLE AS old_rows "
     "FOR EACH STATEMENT", "customer_rollups_scores"),
]  # fmt: skip
FUNCTIONS = [
    ("customer_rollups_lock", LOCK_FUNCTION),
    ("customer_rollups_prepare", PREPARE_FUNCTION),
    ("customer_rollups_customers", CUSTOMERS_FUNCTION),
    ("customer_rollups_customer_deleted", CUSTOMER_DELETED_FUNCTION),
    ("customer_rollups_facts", FACTS_FUNCTION),
    ("customer_rollups_scores", SCORES_FUNCTION),
]


def _table_of(event: str) -> str:
    return event.split(" ON ")[1].split()[0]


def upgrade() -> None:
    op.create_table(
        "customer_rollups",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("province", sa.String(length=50), nullable=True),
        sa.Column("city", sa.String(length=50), nullable=True),
        sa.Column("rfm_r", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_f", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_group", sa.String(length=30), nullable=True),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column(
            "customers", sa.BigInteger(), nullable=False, comment="Live customers (a delta)."
        ),
        sa.Column(
            "buyers", sa.BigInteger(), nullable=False, comment="Of them, with a buying order."
        ),
        sa.Column("spent_fen", sa.BigInteger(), nullable=False, comment="Their total spent."),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_customer_rollups_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_customer_rollups")),
    )
    for _, function in FUNCTIONS:
        op.execute(function)
    for name, event, function in TRIGGERS:
        op.execute(f"CREATE TRIGGER customer_rollups_{name} {event} EXECUTE FUNCTION {function}()")
    op.execute(BACKFILL)
    op.drop_index("ix_orders_paid_at", table_name="orders")
    op.create_index(
        "ix_orders_paid_at",
        "orders",
        ["tenant_id", "paid_at"],
        unique=False,
        postgresql_include=PAID_AT_INCLUDE,
    )


def downgrade() -> None:
    op.drop_index("ix_orders_paid_at", table_name="orders")
    op.create_index("ix_orders_paid_at", "orders", ["tenant_id", "paid_at"], unique=False)
    for name, event, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER customer_rollups_{name} ON {_table_of(event)}")
    for function, _ in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_table("customer_rollups")

"""Unit tests of the filter compiler: the SQL it produces, without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from app.errors import ValidationFailed
from app.services.segments.compiler import compile_filter
from app.services.segments.fields import QueryContext

CTX = QueryContext(
    uuid.uuid4(), datetime(2026, 6, 1, tzinfo=UTC), {"茶叶": [("code_prefix", "TEA-")]}
)


def sql(tree: Any) -> tuple[str, dict[str, Any]]:
    compiled = compile_filter(tree, CTX).compile(dialect=postgresql.dialect())
    return str(compiled), compiled.params


def test_values_only_ever_become_bound_parameters() -> None:
    hostile = "x' OR 1=1 --"
    text, params = sql({"field": "city", "op": "eq", "value": hostile})
    assert hostile not in text
    assert hostile in params.values()


def test_array_values_are_one_typed_parameter_for_gin_indexes() -> None:
    text, params = sql({"field": "tags", "op": "contains", "value": ["vip", "老客"]})
    assert "tags @> %(param_1)s::TEXT[]" in text
    assert params["param_1"] == ["vip", "老客"]


def test_facts_defaults_are_spelled_out_only_when_a_missing_row_could_match() -> None:
    assert "coalesce" not in sql({"field": "order_count", "op": "gte", "value": 1})[0]
    assert "coalesce" in sql({"field": "order_count", "op": "lt", "value": 1})[0]
    assert "coalesce" not in sql({"field": "lifecycle_stage", "op": "eq", "value": "new"})[0]
    assert "coalesce" in sql({"field": "lifecycle_stage", "op": "in", "value": ["prospect"]})[0]


def test_repeat_purchases_compile_to_one_grouped_semi_join() -> None:
    text, _ = sql({"ordered": {"category": "茶叶", "min_times": 2}})
    assert "GROUP BY o.customer_id" in text
    assert "HAVING count(*) >=" in text
    assert "starts_with(oi.merchant_code" in text
    assert "product_category_rules" not in text
    once, _ = sql({"ordered": {"platform": "jd"}})
    assert "EXISTS" in once
    assert "GROUP BY" not in once


def test_a_category_without_rules_matches_no_order() -> None:
    text, _ = sql({"ordered": {"category": "没有的分类"}})
    assert "false" in text


def test_errors_name_the_path_and_the_dotted_form() -> None:
    with pytest.raises(ValidationFailed) as caught:
        compile_filter({"or": [{"not": {"field": "city", "op": "gt", "value": 1}}]}, CTX)
    assert list(caught.value.errors[0].loc) == ["body", "filter", "or", 0, "not", "op"]
    assert "filter.or[0].not.op" in caught.value.detail

"""Ids: UUIDv7 one at a time and in batches."""

from __future__ import annotations

import time
import uuid

from app.models.base import new_id, new_id_batches


def test_batched_ids_are_uuid7_in_taking_order_and_after_earlier_ids() -> None:
    before = new_id()
    take = new_id_batches()
    ids = [uuid.UUID(text) for text in take(1000) + take(1) + take(2500)]
    assert len(set(ids)) == len(ids) == 3501
    assert ids == sorted(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    millis = ids[0].int >> 80  # the first 48 bits: Unix time in milliseconds
    assert abs(millis - time.time_ns() // 1_000_000) < 60_000
    assert before.int >> 80 <= millis

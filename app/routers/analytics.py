"""Analytics endpoints: sales overview, RFM, lifecycle, cohorts and geography."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import ClockDep, CurrentKey, Session
from app.lean_route import LeanRoute
from app.problems import responses
from app.schemas.analytics import (
    CohortsOut,
    GeoOut,
    Interval,
    LifecycleHistoryOut,
    LifecycleOut,
    OverviewOut,
    RfmOut,
)
from app.services import analytics

router = APIRouter(route_class=LeanRoute, prefix="/api/v1/analytics", tags=["analytics"])

Since = Annotated[
    datetime | None, Query(description="Window start, inclusive (default: 30 days ago).")
]
Until = Annotated[datetime | None, Query(description="Window end, exclusive (default: now).")]


def _window(
    clock: ClockDep, since: datetime | None, until: datetime | None, days: int
) -> tuple[datetime, datetime]:
    end = until or clock()
    return since or end - timedelta(days=days), end


@router.get(
    "/overview",
    summary="Customers, buyers, GMV, AOV and repurchase rate, by platform, shop and period",
    responses=responses(401, 403, 422),
)
async def overview(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    since: Since = None,
    until: Until = None,
    interval: Annotated[
        Interval, Query(description="Length of a period in `series`.")
    ] = Interval.day,
) -> OverviewOut:
    start, end = _window(clock, since, until, 30)
    return await analytics.overview(session, actor, start, end, interval)


@router.get(
    "/rfm",
    summary="The 5x5 recency-frequency grid and the eight RFM groups with counts and spend",
    responses=responses(401, 403),
)
async def rfm(session: Session, actor: CurrentKey) -> RfmOut:
    return await analytics.rfm(session, actor)


@router.get(
    "/lifecycle",
    summary="Customers per lifecycle stage, and flows between stages from `since` to `until`",
    responses=responses(401, 403, 422),
)
async def lifecycle(
    session: Session, actor: CurrentKey, clock: ClockDep, since: Since = None, until: Until = None
) -> LifecycleOut:
    start, end = _window(clock, since, until, 30)
    return await analytics.lifecycle(session, actor, start, end)


@router.get(
    "/lifecycle/customers/{customer_id}",
    summary="One customer's lifecycle history: every stage change with its date",
    responses=responses(401, 403, 404),
)
async def customer_lifecycle(
    session: Session, actor: CurrentKey, customer_id: uuid.UUID
) -> LifecycleHistoryOut:
    return LifecycleHistoryOut(
        items=await analytics.customer_lifecycle(session, actor, customer_id)
    )


@router.get(
    "/cohorts",
    summary="Monthly first-purchase cohorts by months since: retention and revenue",
    responses=responses(401, 403, 422),
)
async def cohorts(
    session: Session,
    actor: CurrentKey,
    clock: ClockDep,
    since: Annotated[
        datetime | None, Query(description="First purchases from (default: 12 months ago).")
    ] = None,
    until: Until = None,
) -> CohortsOut:
    start, end = _window(clock, since, until, 365)
    return await analytics.cohorts(session, actor, start, end)


@router.get(
    "/geo",
    summary="Customers, buyers and spend by province and city",
    responses=responses(401, 403, 422),
)
async def geo(
    session: Session,
    actor: CurrentKey,
    cities: Annotated[int, Query(ge=1, le=500, description="Cities listed per province.")] = 20,
) -> GeoOut:
    return await analytics.geo(session, actor, cities)

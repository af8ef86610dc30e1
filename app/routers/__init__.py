"""Every router the app serves, in the order `/docs` lists them."""

from fastapi import APIRouter

from app.routers import (
    analytics,
    api_keys,
    audit,
    customers,
    health,
    identities,
    imports,
    loyalty,
    orders,
    segments,
    shops,
    ticket_reports,
    ticket_setup,
    tickets,
)

ROUTERS: list[APIRouter] = [
    health.router,
    customers.router,
    shops.router,
    orders.router,
    imports.router,
    identities.router,
    segments.router,
    analytics.router,
    loyalty.router,
    api_keys.router,
    audit.router,
    tickets.router,
    tickets.nps_router,
    ticket_setup.staff_router,
    ticket_setup.category_router,
    ticket_setup.sla_router,
    ticket_setup.settings_router,
    ticket_reports.router,
]

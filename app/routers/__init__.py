"""Every router the app serves, in the order `/docs` lists them."""

from fastapi import APIRouter

from app.routers import api_keys, audit, customers, health, identities, orders, shops

ROUTERS: list[APIRouter] = [
    health.router,
    customers.router,
    shops.router,
    orders.router,
    identities.router,
    api_keys.router,
    audit.router,
]

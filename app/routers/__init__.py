"""Every router the app serves, in the order `/docs` lists them."""

from fastapi import APIRouter

from app.routers import api_keys, audit, customers, health, shops

ROUTERS: list[APIRouter] = [
    health.router,
    customers.router,
    shops.router,
    api_keys.router,
    audit.router,
]

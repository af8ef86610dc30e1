"""All tables, imported here so that Alembic and the metadata see every one."""

from app.models.analytics import CustomerChange, CustomerMonth, CustomerRollup
from app.models.base import Base
from app.models.customers import Customer, CustomerAddress, CustomerContact, Interaction
from app.models.facts import CustomerFacts
from app.models.idempotency import IdempotencyKey
from app.models.identities import CustomerIdentity
from app.models.imports import Import, ImportRejection
from app.models.loyalty import (
    LoyaltyAccount,
    LoyaltyEntry,
    LoyaltyLot,
    LoyaltyLotConsumption,
    LoyaltyOrderEarn,
    LoyaltyProgram,
    LoyaltyTierChange,
)
from app.models.merges import MergeSuggestion
from app.models.orders import Order, OrderItem
from app.models.privacy import AuditEvent
from app.models.segments import (
    CustomerScores,
    LifecycleEvent,
    ProductCategoryRule,
    Segment,
    SegmentEvaluation,
    SegmentSettings,
)
from app.models.shops import Shop
from app.models.tenants import ApiKey, Tenant
from app.models.ticket_rollups import TicketRollup, TicketRollupDay, TicketRollupDirty
from app.models.tickets import (
    NpsResponse,
    Ticket,
    TicketCategory,
    TicketEvent,
    TicketItem,
    TicketSettings,
    TicketSlaPolicy,
    TicketStaff,
    TicketSurvey,
)

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "Customer",
    "CustomerAddress",
    "CustomerChange",
    "CustomerContact",
    "CustomerFacts",
    "CustomerIdentity",
    "CustomerMonth",
    "CustomerRollup",
    "CustomerScores",
    "IdempotencyKey",
    "Import",
    "ImportRejection",
    "Interaction",
    "LifecycleEvent",
    "LoyaltyAccount",
    "LoyaltyEntry",
    "LoyaltyLot",
    "LoyaltyLotConsumption",
    "LoyaltyOrderEarn",
    "LoyaltyProgram",
    "LoyaltyTierChange",
    "MergeSuggestion",
    "NpsResponse",
    "Order",
    "OrderItem",
    "ProductCategoryRule",
    "Segment",
    "SegmentEvaluation",
    "SegmentSettings",
    "Shop",
    "Tenant",
    "Ticket",
    "TicketCategory",
    "TicketEvent",
    "TicketItem",
    "TicketRollup",
    "TicketRollupDay",
    "TicketRollupDirty",
    "TicketSettings",
    "TicketSlaPolicy",
    "TicketStaff",
    "TicketSurvey",
]

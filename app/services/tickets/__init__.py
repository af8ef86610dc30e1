"""Feedback and complaint tickets: states, SLA clocks, staff, categories, surveys, reports."""

# Importing the package registers the customer-merge hook with the identities service.
from app.services.tickets import hooks as hooks

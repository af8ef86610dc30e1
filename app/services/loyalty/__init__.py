"""Loyalty ledgers: program settings, an append-only points ledger with lots, tiers, reports."""

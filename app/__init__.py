"""Kezhan: customer data platform for Chinese marketplace sellers."""

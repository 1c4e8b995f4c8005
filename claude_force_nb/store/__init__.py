"""Persistence: SQLite plumbing, the signed response cache and the ledger."""

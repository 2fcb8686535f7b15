"""Connectors: one module per kind, each with the same small interface (see ``api``)."""

"""Warehouses the loader writes to and queries: one small interface, one module per implementation."""

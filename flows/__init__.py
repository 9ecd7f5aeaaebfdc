"""Prefect flows of kobart-keywords."""

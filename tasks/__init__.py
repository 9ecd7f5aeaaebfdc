"""Prefect tasks: one thin wrapper per pipeline step around the core package."""

"""Heard analytics service."""

"""Heard intake service."""

"""Heard routing service."""

"""Heard notify service."""

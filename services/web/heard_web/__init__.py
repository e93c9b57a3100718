"""Heard web: the resident site, the staff console and the oversight view, rendered on the server."""

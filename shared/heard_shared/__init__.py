"""Heard's common library: the event contract and the plumbing every service shares."""

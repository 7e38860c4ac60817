"""Versioned event payload contracts, shared by producers and consumers (see docs/events.md)."""

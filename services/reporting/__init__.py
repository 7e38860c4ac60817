"""The reporting service: read models built from events: portfolio quality, guarantees, impact and pipeline reports."""

"""`make demo`: a realistic dataset loaded into a running platform through the gateway's public API."""

"""The gateway: the one door. Routing, API keys, rate limits, request ids, circuit breaking, merged OpenAPI."""

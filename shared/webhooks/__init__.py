"""Standard Webhooks: secrets, signing and verification (`secrets`), durable outbound delivery (`outbound`)."""

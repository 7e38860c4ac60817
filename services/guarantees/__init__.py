"""The guarantees service: guarantee capital ledger, facilities, guarantees, limits, claims, recoveries and fees."""

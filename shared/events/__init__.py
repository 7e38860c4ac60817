"""The event table: outbox in each producer's schema, a sequencer, an HTTP feed, idempotent consumers.

Read docs/events.md for the design and the guarantees.
"""

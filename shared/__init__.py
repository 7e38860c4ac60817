"""The small kernel every service uses: settings, db, problems, money, auth context, logging, idempotency."""

"""The reports: portfolio quality, impact and pipeline, as of a date, filtered and grouped, in JSON or CSV."""

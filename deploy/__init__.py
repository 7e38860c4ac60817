"""How the platform runs: the local supervisor behind `make run`, migrations, the embedded database."""

"""`make bench`: every benchmark in turn; each writes its own section of docs/benchmarks.md."""

from tests.bench import events, gateway, pushes, reports

if __name__ == "__main__":
    gateway.run()
    events.run()
    pushes.run()
    reports.run()

"""`python -m deploy.demo` (what `make demo` runs): loads the demo dataset into the platform `make run` serves.

make demo                                   # FISIQ_ADMIN_KEY=fsk_... in the environment
python -m deploy.demo --admin-key fsk_... --gateway http://127.0.0.1:8000 --seed 7 --scale 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime

from rich.console import Console

from deploy.demo.client import ApiError, Gateway
from deploy.demo.loader import DemoError, Loader, Summary, report
from deploy.demo.plan import make_plan

DEFAULT_SEED = 20261128


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default=os.environ.get("FISIQ_GATEWAY", "http://127.0.0.1:8000"))
    parser.add_argument(
        "--admin-key",
        default=os.environ.get("FISIQ_ADMIN_KEY") or os.environ.get("GATEWAY_BOOTSTRAP_ADMIN_KEY"),
        help="an admin API key (default: $FISIQ_ADMIN_KEY, else $GATEWAY_BOOTSTRAP_ADMIN_KEY)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the same seed gives the same dataset")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count (e.g. 0.05 for a tiny run)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    args = parser.parse_args(argv)
    if not args.admin_key:
        parser.error("an admin API key is needed: --admin-key fsk_... or FISIQ_ADMIN_KEY (see README, make demo)")
    if not 0 < args.scale <= 10:
        parser.error("--scale must be in (0, 10]")
    return args


async def load(
    gateway: str, admin_key: str, *, seed: int, scale: float, concurrency: int = 8, console: Console | None = None
) -> Summary:
    plan = make_plan(seed=seed, scale=scale, today=datetime.now(UTC).date())
    client = Gateway(gateway, concurrency=concurrency)
    try:
        return await Loader(client, plan, admin_key, console).run()
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console(stderr=True)
    try:
        summary = asyncio.run(
            load(args.gateway, args.admin_key, seed=args.seed, scale=args.scale, concurrency=args.concurrency)
        )
    except (DemoError, ApiError, TimeoutError) as exc:
        console.print(f"[bold red]make demo failed:[/] {exc}")
        return 1
    except OSError as exc:
        console.print(f"[bold red]cannot reach the gateway at {args.gateway}:[/] {exc} (is `make run` running?)")
        return 1
    report(summary, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())

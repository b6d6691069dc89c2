"""``sidetrace migrate``: apply the schema to a store."""

from __future__ import annotations

import argparse

from tracestore.migrate import migrate
from tracestore.store import add_clickhouse_flag, open_store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help="apply pending schema migrations")
    add_clickhouse_flag(parser)
    parser.add_argument("--cluster", default=None, help="render ON CLUSTER / Replicated form")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.clickhouse)
    applied = migrate(store, cluster=args.cluster)
    if applied:
        print("applied: " + ", ".join(applied))
    else:
        print("schema is up to date")
    return 0

"""`alikms`: the one console command, a subcommand per tool.

    alikms serve [--host H] [--port P] [--data-dir DIR] [--workers N] [--no-timers] [--seed FILE]
                 [--timeout-keep-alive S] [--request-timeout S]
    alikms invoke FUNCTION [--event FILE] [--data-dir DIR]
    alikms admin ...                 (access keys, policies, the audit trail, root-key rotation)
    alikms create-tables [...]       (the Tablestore tables of a deployment)
    alikms fake-tablestore [...]     (a wire-level Tablestore fake on loopback, for local runs and tests)
    alikms templates [--check]       (write template.yml, s.yaml, apigateway-routing.yml and index.py)
    alikms package [--runtime R]     (build dist/R/code.zip and dist/R/layer.zip for Function Compute)

Each tool keeps its own argument parser; this module only picks one, so `alikms admin --help` is the
admin tool's own help. Imports happen after the choice: `alikms serve` never loads the admin code.
"""

from __future__ import annotations

import argparse
import os
import sys


def _runner(argv: list[str]) -> int:
    from . import server

    parser = argparse.ArgumentParser(prog="alikms")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="the whole API over HTTP, with the timers")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--data-dir", default=os.environ.get("KMS_DATA_DIR", ".kms-data"))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-timers", action="store_true")
    p.add_argument("--seed", metavar="FILE", help="keys, aliases and secrets to create at start (YAML or JSON)")
    p.add_argument("--timeout-keep-alive", type=float, default=5.0, metavar="SECONDS",
                   help="close a connection that sent nothing for this long (default 5)")
    p.add_argument("--request-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="answer 408 and close when a request has not arrived whole this long after its "
                        "first byte (default 30)")
    p = sub.add_parser("invoke", help="one function once, like `fun local invoke`")
    p.add_argument("function")
    p.add_argument("--event")
    p.add_argument("--data-dir", default=os.environ.get("KMS_DATA_DIR", ".kms-data"))
    args = parser.parse_args(argv)
    if args.data_dir:
        os.environ["KMS_DATA_DIR"] = os.path.abspath(args.data_dir)
    from alikms.shared.config import ConfigError
    from alikms.shared.localfiles import UnsafeFile

    try:
        if args.command == "invoke":
            # stdout carries the function's result; audit records still go to the data directory.
            os.environ.setdefault("KMS_AUDIT_STDOUT", "false")
            return server.invoke(args)
        server.serve(args)
    except (ConfigError, UnsafeFile) as exc:  # a clear refusal to start, not a traceback
        print(f"alikms: {exc}", file=sys.stderr)
        return 1
    return 0


def _admin(argv: list[str]) -> int:
    from . import admin

    return admin.main(argv)


def _create_tables(argv: list[str]) -> int:
    from alikms.deploy import tables

    return tables.main(argv)


def _fake_tablestore(argv: list[str]) -> int:
    from alikms.testing import fake_tablestore

    fake_tablestore.main(argv)
    return 0


def _templates(argv: list[str]) -> int:
    from alikms.deploy import templates

    return templates.main(argv)


def _package(argv: list[str]) -> int:
    from alikms.deploy import package

    return package.main(argv)


COMMANDS = {"admin": _admin, "create-tables": _create_tables, "fake-tablestore": _fake_tablestore,
            "templates": _templates, "package": _package}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1].rstrip())
        return 0 if argv else 2
    return _runner(argv)


if __name__ == "__main__":
    sys.exit(main())

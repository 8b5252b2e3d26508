"""Create the Tablestore tables of a deployment: every table in `alikms.shared.store.base.TABLES`.

    scripts/create-tables [--endpoint URL] [--instance NAME] [--ttl-nonces SECONDS]

Reads the Tablestore part of the functions' settings model (`TablestoreSettings` in
shared/config.py): OTS_ENDPOINT, OTS_INSTANCE (derived from the endpoint when unset) and the
credentials, OTS_ACCESS_KEY_ID / OTS_ACCESS_KEY_SECRET / OTS_SECURITY_TOKEN or else
ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / ALIBABA_CLOUD_SECURITY_TOKEN. The instance itself must
exist. Safe to run again: tables that exist are left as they are (their options included, so a
nonce table created by another tool keeps its TTL). The root key and the rest of the configuration
are not needed here.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

from alikms.shared.config import TablestoreSettings, read_settings
from alikms.shared.store.base import TABLES


def ots_settings(endpoint: str | None = None, instance: str | None = None) -> SimpleNamespace:
    """The Tablestore fields of alikms.shared.config.Config, from the same settings model, with
    the command line's endpoint and instance first."""
    settings = read_settings(TablestoreSettings)
    akid, secret, token = settings.credentials()
    return SimpleNamespace(ots_endpoint=endpoint or settings.ots_endpoint,
                           ots_instance=instance or settings.ots_instance,
                           ots_access_key_id=akid, ots_access_key_secret=secret, ots_security_token=token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/create-tables", description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", help="Tablestore endpoint (default: $OTS_ENDPOINT)")
    parser.add_argument("--instance", help="instance name (default: $OTS_INSTANCE, else from the endpoint)")
    parser.add_argument("--ttl-nonces", type=int, metavar="SECONDS",
                        help="TTL of the nonce table, -1 for none (default and minimum: one day)")
    args = parser.parse_args(argv)

    # Imported here so that --help works without the SDK.
    from alikms.shared.store.tablestore import client_from_config, create_tables

    try:
        client = client_from_config(ots_settings(args.endpoint, args.instance))
        before = set(client.list_table())
        if args.ttl_nonces is None:
            create_tables(client)
        else:
            create_tables(client, ttl_nonces=args.ttl_nonces)
        after = set(client.list_table())
    except Exception as exc:  # noqa: BLE001 - report any failure in one line, as a CLI should
        print(f"create-tables: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    missing = [name for name in TABLES.values() if name not in after]
    for name in TABLES.values():
        state = "exists" if name in before else ("missing" if name in missing else "created")
        print(f"{state:8} {name}")
    if missing:
        print(f"create-tables: not created: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

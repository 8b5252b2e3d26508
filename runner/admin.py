"""Administration: access keys and their policies, the audit trail, root-key rotation.

Same configuration as the service (`--data-dir` for a local instance; KMS_STORE=tablestore and the
OTS_* variables for a deployment). Examples:
    scripts/admin access-key create --account 1234567890123456 [--policy policy.json] [--json]
    scripts/admin access-key list [--account ID] [--json]
    scripts/admin access-key disable|enable|delete LTAI...
    scripts/admin policy set LTAI... policy.json        (or --clear: the account's own key again)
    scripts/admin audit [--action Encrypt] [--account ID] [--access-key LTAI...] [--code OK] [--since ISO]
    scripts/admin rotate-root-key
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time

from alikms.shared import audit, identity, localfiles, policy, rootkeys
from alikms.shared.config import ConfigError, check_account_id, get_config, read_root_key_file
from alikms.shared.store import get_store


def _print(rows: list[dict], as_json: bool) -> None:
    for row in rows:
        print(json.dumps(row, ensure_ascii=False) if as_json else "  ".join(f"{k}={v}" for k, v in row.items()))


def _load_policy(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    policy.parse(doc)
    return doc


def _account(value: str) -> str:
    """argparse type of --account: an Alibaba Cloud account id, or a clear refusal. An empty or
    mistyped value must not fall back to the default account (a full-access key for it)."""
    try:
        return check_account_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None


def access_key(args: argparse.Namespace) -> int:
    store, cfg = get_store(), get_config()
    identity.ensure_bootstrap(store, cfg, time.time())
    if args.verb == "create":
        policies = [_load_policy(args.policy)] if args.policy else None
        account = cfg.account_id if args.account is None else args.account
        ak_id, secret = identity.create(store, cfg, account, policies, time.time())
        out = {"AccessKeyId": ak_id, "AccessKeySecret": secret, "AccountId": account}
        print(json.dumps(out) if args.json else f"AccessKeyId: {ak_id}\nAccessKeySecret: {secret}")
        return 0
    if args.verb == "list":
        rows = [{"AccessKeyId": i.pk, "AccountId": i.data["account_id"], "Status": i.data["status"],
                 "Policies": len(i.data["policies"]) if i.data.get("policies") is not None else "account-key",
                 "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(i.data["created"]))}
                for i in store.scan_all("access_keys")
                if i.data["status"] != identity.DELETED and (args.account is None or i.data["account_id"] == args.account)]
        _print(rows, args.json)
        return 0
    status = {"disable": identity.DISABLED, "enable": identity.ENABLED, "delete": identity.DELETED}[args.verb]
    try:
        identity.update(store, args.access_key_id, status=status)
    except KeyError:
        print(f"no access key {args.access_key_id}", file=sys.stderr)
        return 1
    print(f"{args.access_key_id}: {status}")
    return 0


def policy_set(args: argparse.Namespace) -> int:
    if not args.clear and not args.file:
        print("give a policy file or --clear", file=sys.stderr)
        return 2
    try:
        identity.update(get_store(), args.access_key_id, policies=None if args.clear else [_load_policy(args.file)])
    except KeyError:
        print(f"no access key {args.access_key_id}", file=sys.stderr)
        return 1
    print(f"{args.access_key_id}: {'account key (no policy)' if args.clear else 'policy set'}")
    return 0


def audit_read(args: argparse.Namespace) -> int:
    cfg = get_config()
    path = args.file or (str(cfg.data_dir / audit.FILE_NAME) if cfg.data_dir else "")
    if not path or not os.path.exists(path):
        print("no audit file (local mode writes audit.log in the data directory)", file=sys.stderr)
        return 1
    filters = {"Action": args.action, "AccountId": args.account, "AccessKeyId": args.access_key,
               "ResultCode": args.code}
    for rec in audit.read(path, **filters):
        if args.since and rec["EventTime"] < args.since:
            continue
        print(json.dumps(rec, ensure_ascii=False))
    return 0


def _write_key_file(path, ring: dict[str, bytes]) -> None:
    # Atomic (readers see the old ring or the new one), 0600, never through a planted link.
    text = ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in ring.items())
    localfiles.write_private(path, text.encode(), replace=True)


def rotate_root_key(args: argparse.Namespace) -> int:
    """Add a new primary root key, re-wrap everything, then drop the old key. Resumable."""
    cfg, store = get_config(), get_store()
    path = cfg.root_key_path
    ring = read_root_key_file(path) if path else cfg.root_keys
    if len(ring) == 1:
        if path is None:
            print("KMS_ROOT_KEY holds one key: put the new key first (KMS_ROOT_KEY=new:B64,old:B64) in the\n"
                  "service and here, deploy, then run this again; afterwards drop the old key.", file=sys.stderr)
            return 2
        number = max(int(k[1:]) for k in ring if k[1:].isdigit()) + 1 if ring else 1
        ring = {f"r{number}": secrets.token_bytes(32), **ring}
        _write_key_file(path, ring)
        print(f"new primary root key r{number}; running workers pick it up within a second")
        time.sleep(1.5)
    while True:
        counts = rootkeys.rewrap(store, cfg, args.stop_after)
        print("re-wrapped: " + (", ".join(f"{t} {n}" for t, n in counts.items()) or "nothing"))
        if args.stop_after is not None:
            print("stopped early (--stop-after); run again to finish")
            return 0
        left = rootkeys.remaining(store, cfg)
        if left == 0:
            break
        print(f"{left} rows written under the old key meanwhile; another pass")
    primary = next(iter(ring))
    if path is not None:
        _write_key_file(path, {primary: ring[primary]})
        print(f"done: every row is under {primary}; old root keys removed from {path}")
    else:
        print(f"done: every row is under {primary}; remove the old keys from KMS_ROOT_KEY")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="admin", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("KMS_DATA_DIR", ".kms-data"))
    sub = parser.add_subparsers(dest="command", required=True)
    ak = sub.add_parser("access-key").add_subparsers(dest="verb", required=True)
    create = ak.add_parser("create")
    create.add_argument("--account", type=_account, help="16-digit account id (default: the default account)")
    create.add_argument("--policy")
    create.add_argument("--json", action="store_true")
    lst = ak.add_parser("list")
    lst.add_argument("--account", type=_account)
    lst.add_argument("--json", action="store_true")
    for verb in ("disable", "enable", "delete"):
        ak.add_parser(verb).add_argument("access_key_id")
    pol = sub.add_parser("policy").add_subparsers(dest="verb", required=True).add_parser("set")
    pol.add_argument("access_key_id")
    pol.add_argument("file", nargs="?")
    pol.add_argument("--clear", action="store_true")
    aud = sub.add_parser("audit")
    for name in ("--action", "--account", "--access-key", "--code", "--since", "--file"):
        aud.add_argument(name, type=_account if name == "--account" else None)
    rot = sub.add_parser("rotate-root-key")
    rot.add_argument("--stop-after", type=int, help="re-wrap at most N rows and stop (to test resuming)")
    args = parser.parse_args(argv)
    if args.data_dir and os.environ.get("KMS_STORE", "sqlite") == "sqlite":
        os.environ["KMS_DATA_DIR"] = os.path.abspath(args.data_dir)
    os.environ.setdefault("KMS_AUDIT_STDOUT", "false")
    handlers = {"access-key": access_key, "policy": policy_set, "audit": audit_read, "rotate-root-key": rotate_root_key}
    try:
        return handlers[args.command](args)
    except (OSError, ValueError, ConfigError, localfiles.UnsafeFile) as exc:
        # unreadable file, bad JSON, invalid policy (PolicyError), bad configuration, planted file
        print(f"admin: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

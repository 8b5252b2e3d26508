"""Administration: access keys and their policies, the audit trail, root-key rotation, status.

Same configuration as the service (`--data-dir` for a local instance; KMS_STORE=tablestore and the
OTS_* variables for a deployment). Examples:
    scripts/admin access-key create --account 1234567890123456 [--policy policy.json] [--json]
    scripts/admin access-key list [--account ID] [--json]
    scripts/admin access-key disable|enable|delete LTAI...
    scripts/admin policy set LTAI... policy.json        (or --clear: the account's own key again)
    scripts/admin audit [--action Encrypt] [--account ID] [--access-key LTAI...] [--code OK] [--since ISO]
    scripts/admin audit verify [--json]     (exit status 1 when the trail was tampered with)
    scripts/admin rotate-root-key
    scripts/admin status [--json]

Long operations (root-key rotation, verifying a large trail, status over many keys) draw a progress
line on stderr when it is a terminal, and nothing otherwise.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import secrets
import sys
import time

from alikms.shared import audit, audit_verify, identity, localfiles, ops, policy, registry, rootkeys
from alikms.shared.config import ConfigError, check_account_id, get_config, read_root_key_file
from alikms.shared.crypto import root
from alikms.shared.store import get_store


class Progress:
    """One status line on stderr, redrawn at most ten times a second, when stderr is a terminal."""

    def __init__(self, label: str, stream=None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.on = self.stream.isatty()
        self.shown, self.last = False, 0.0

    def __call__(self, done: int, total: int | None = None, unit: str = "") -> None:
        now = time.monotonic()
        if not self.on or now - self.last < 0.1 and (total is None or done < total):
            return
        self.last, self.shown = now, True
        of = f" of {total:,}{unit}" if total else unit
        pct = f" ({100 * done // total}%)" if total else ""
        self.stream.write(f"\r\033[K{self.label}: {done:,}{of}{pct}")
        self.stream.flush()

    def end(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


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
                if i.data["status"] != identity.DELETED
                and (args.account is None or i.data["account_id"] == args.account)]
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
    if args.verb == "verify":
        return audit_check(args, cfg)
    filters = {"Action": args.action, "AccountId": args.account, "AccessKeyId": args.access_key,
               "ResultCode": args.code}
    if args.file:
        records = audit.read(args.file, **filters)
    elif cfg.data_dir is not None and (audit.files(cfg.data_dir) or (cfg.data_dir / audit.FILE_NAME).exists()):
        records = audit.events(cfg.data_dir, **filters)
    else:
        print("no audit trail (local mode writes it to audit/ in the data directory)", file=sys.stderr)
        return 1
    for rec in records:
        if args.since and rec["EventTime"] < args.since:
            continue
        print(json.dumps(rec, ensure_ascii=False))
    return 0


def audit_check(args: argparse.Namespace, cfg) -> int:
    """Verify the chain and digests of every trail file; exit status 1 if anything was tampered with."""
    if cfg.data_dir is None:
        print("no data directory: a deployment's trail is in its log service", file=sys.stderr)
        return 2
    progress = Progress("verifying the audit trail")
    try:
        report = audit_verify.verify(cfg.data_dir, root.keys(cfg, force=True),
                                     lambda done, total: progress(done, total, " bytes"),
                                     retired=rootkeys.retired_digest_keys(get_store(), cfg))
    finally:
        progress.end()
    if args.json:
        print(json.dumps({"files": report.files, "writers": report.writers, "records": report.records,
                          "ok": not report.problems, "findings": [vars(f) for f in report.findings]}))
    else:
        for finding in report.findings:
            print(finding)
        verdict = "intact" if not report.problems else f"{len(report.problems)} problem(s)"
        print(f"{report.files} files, {report.writers} writers, {report.records} records: {verdict}")
    return 1 if report.problems else 0


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
        time.sleep(root.RECHECK_SECONDS + 0.5)  # so that they wrap new data under it before the sweep
    while True:
        progress = Progress("re-wrapping under the new root key")
        total = rootkeys.remaining(store, cfg) if progress.on else None
        try:
            counts = rootkeys.rewrap(store, cfg, args.stop_after, functools.partial(progress, total=total,
                                                                                      unit=" rows"))
        finally:
            progress.end()
        print("re-wrapped: " + (", ".join(f"{t} {n}" for t, n in counts.items()) or "nothing"))
        if args.stop_after is not None:
            print("stopped early (--stop-after); run again to finish")
            return 0
        left = rootkeys.remaining(store, cfg)
        if left == 0:
            break
        print(f"{left} rows written under the old key meanwhile; another pass")
    primary = next(iter(ring))
    rootkeys.retire_digest_keys(store, cfg, ring)  # the audit trail they sealed stays verifiable
    if path is not None:
        _write_key_file(path, {primary: ring[primary]})
        print(f"done: every row is under {primary}; old root keys removed from {path}")
    else:
        print(f"done: every row is under {primary}; remove the old keys from KMS_ROOT_KEY")
    return 0


def status_report(store, cfg, progress=None) -> dict:
    """What `status` shows: the store, counts per account, the root-key ring (ids only), the nonce
    table, each timer's last run and the audit trail's files."""
    now = int(time.time())
    accounts: dict[str, dict] = {}

    def account(account_id: str) -> dict:
        return accounts.setdefault(account_id, {"Status": "", "AccessKeys": 0, "Regions": {}})

    seen = 0
    for table in ("accounts", "access_keys", "keys", "aliases", "secrets"):
        for item in store.scan_all(table):
            seen += 1
            if progress is not None:
                progress(seen, None, " rows")
            if table == "accounts":
                account(item.pk)["Status"] = item.data.get("Status", "")
                continue
            if table == "access_keys":
                if item.data.get("status") != identity.DELETED:
                    account(item.data["account_id"])["AccessKeys"] += 1
                continue
            account_id, _, region = item.pk.partition("/")
            counts = account(account_id)["Regions"].setdefault(region, {"Keys": 0, "KeyStates": {}, "Aliases": 0,
                                                                        "Secrets": 0})
            if table == "keys":
                counts["Keys"] += 1
                state = item.data.get("state", "")
                counts["KeyStates"][state] = counts["KeyStates"].get(state, 0) + 1
            else:
                counts["Aliases" if table == "aliases" else "Secrets"] += 1
    ring = list(root.keys(cfg, force=True))
    live, slots = store.nonce_usage(now) or (None, None)
    runs = ops.last_timer_runs(store)
    files = audit.files(cfg.data_dir) if cfg.data_dir is not None else []
    return {
        "Store": {"Kind": cfg.store, **({"Path": str(cfg.data_dir / "kms.sqlite3")} if cfg.store == "sqlite" else
                                        {"Endpoint": cfg.ots_endpoint, "Instance": cfg.ots_instance})},
        "RootKeys": {"Primary": ring[0], "Ids": ring},
        "NonceTable": {"Live": live, "Slots": slots} if slots else None,
        "Accounts": accounts,
        "Timers": {job.name: runs.get(job.name) for job in registry.JOBS},
        "AuditTrail": {"Files": len(files), "Bytes": sum(p.stat().st_size for p in files),
                       "Writers": len({m.group(2) for p in files if (m := audit.FILE_RE.match(p.name))}),
                       "Directory": str(cfg.data_dir / audit.DIR_NAME) if cfg.data_dir is not None else None},
    }


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else "-"


def status(args: argparse.Namespace) -> int:
    store, cfg = get_store(), get_config()
    progress = Progress("counting")
    try:
        report = status_report(store, cfg, progress)
    finally:
        progress.end()
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    st = report["Store"]
    print(f"store        {st['Kind']}  {st.get('Path') or st.get('Endpoint', '') + ' ' + st.get('Instance', '')}")
    ring = report["RootKeys"]
    print("root keys    " + ", ".join(k + (" (primary)" if k == ring["Primary"] else "") for k in ring["Ids"]))
    nt = report["NonceTable"]
    if nt:
        print(f"nonce table  {nt['Live']:,} of {nt['Slots']:,} slots live ({100 * nt['Live'] / nt['Slots']:.1f}%)")
    print("accounts")
    for account_id, acc in sorted(report["Accounts"].items()):
        print(f"  {account_id}  {acc['Status'] or '-'}  access keys {acc['AccessKeys']}")
        for region, c in sorted(acc["Regions"].items()):
            states = ", ".join(f"{k} {v}" for k, v in sorted(c["KeyStates"].items()))
            print(f"    {region}: keys {c['Keys']}" + (f" ({states})" if states else "")
                  + f", aliases {c['Aliases']}, secrets {c['Secrets']}")
    print("timers")
    for job, run in report["Timers"].items():
        if run is None:
            print(f"  {job:22} never run")
            continue
        summary = " ".join(f"{k}={v}" for k, v in run.get("summary", {}).items() if k != "FailedFirst")
        result = "ok" if run.get("ok") else "FAILED " + run.get("error", "")
        print(f"  {job:22} {_when(run.get('trigger_time'))}  {result}  {run.get('seconds', 0):.3f} s  {summary}")
    at = report["AuditTrail"]
    if at["Directory"]:
        print(f"audit trail  {at['Files']} files, {at['Writers']} writers, {at['Bytes']:,} bytes in {at['Directory']}")
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
    aud = sub.add_parser("audit", help="list records (filters below), or `audit verify`")
    aud.add_argument("verb", nargs="?", choices=["list", "verify"], default="list")
    for name in ("--action", "--access-key", "--code", "--since", "--file"):
        aud.add_argument(name)
    aud.add_argument("--account", type=_account)
    aud.add_argument("--json", action="store_true", help="verify: the report as JSON")
    sub.add_parser("status").add_argument("--json", action="store_true")
    rot = sub.add_parser("rotate-root-key")
    rot.add_argument("--stop-after", type=int, help="re-wrap at most N rows and stop (to test resuming)")
    args = parser.parse_args(argv)
    if args.data_dir and os.environ.get("KMS_STORE", "sqlite") == "sqlite":
        os.environ["KMS_DATA_DIR"] = os.path.abspath(args.data_dir)
    os.environ.setdefault("KMS_AUDIT_STDOUT", "false")
    handlers = {"access-key": access_key, "policy": policy_set, "audit": audit_read, "rotate-root-key": rotate_root_key,
                "status": status}
    try:
        if args.command in ("access-key", "policy", "rotate-root-key"):  # they write under the ring
            rootkeys.check_ring(get_store(), get_config())
        return handlers[args.command](args)
    except (OSError, ValueError, ConfigError, localfiles.UnsafeFile) as exc:
        # unreadable file, bad JSON, invalid policy (PolicyError), bad configuration, planted file
        print(f"admin: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

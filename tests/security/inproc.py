"""The service in process behind the local runner's own request path (`runner.app.build_request` and
`dispatch`, the code an HTTP request runs), signed by either scheme, with parameters in the query
or the form body under any names, and the audit trail read back record by record.

No socket: the attack tests send thousands of requests, each a few hundred microseconds this way.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from urllib.parse import quote

from alikms.shared import audit, signing
from tests import support

FORM = "application/x-www-form-urlencoded"


def encode(pairs) -> str:
    """`k=v&...` with every byte that is not unreserved percent-encoded (as the SDKs send)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


class Service:
    """One local instance (the `local_env` data directory) called as any access key."""

    def __init__(self, data_dir: Path) -> None:
        from alikms.shared.config import get_config
        from alikms.shared.store import get_store

        self.cfg, self.store = get_config(), get_store()
        self.data_dir = data_dir
        self._audit_offsets: dict[str, int] = {}  # trail file -> bytes read

    def access_key(self, policies: list[dict] | None, account: str = support.TEST_ACCOUNT) -> tuple[str, str]:
        import time

        from alikms.shared import identity

        return identity.create(self.store, self.cfg, account, policies, time.time())

    def request(self, action: str, query: list[tuple[str, str]] | dict, body: list[tuple[str, str]] | dict = (),
                *, ak: str = support.TEST_AK, secret: str = support.TEST_SECRET, scheme: str = "v1",
                raw_query: str | None = None, raw_body: bytes | None = None, headers: dict | None = None,
                nonce: str | None = None):
        """The runner's HttpRequest for one call: parameters (pairs, names as given) in the query
        and the form body, signed so that the signature holds whatever the names are."""
        from alikms.runner import app

        query = list(query.items()) if isinstance(query, dict) else list(query)
        body = list(body.items()) if isinstance(body, dict) else list(body)
        payload = raw_body if raw_body is not None else encode(body).encode() if body else b""
        hdrs = {"host": "kms.test", "x-acs-action": action, "x-acs-version": "2016-01-20"}
        if payload:
            hdrs["content-type"] = FORM
        nonce = nonce or secrets.token_hex(16)
        if scheme == "v1":
            common = {"Action": action, "Version": "2016-01-20", "Format": "JSON", "AccessKeyId": ak,
                      "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": nonce,
                      "Timestamp": support.timestamp()}
            signed = dict(common)
            for name, value in query + body:
                signed.setdefault(name, value)  # a repeated name is refused before the signature matters
            query = list(common.items()) + query
            query.append(("Signature", signing.rpc_v1_sign(secret, "POST", signed)))
        else:
            hdrs.update({"x-acs-date": support.timestamp(), "x-acs-signature-nonce": nonce,
                         "x-acs-content-sha256": hashlib.sha256(payload).hexdigest()})
            hdrs["authorization"] = signing.acs3_authorization(ak, secret, "POST", "/", dict(query), hdrs, sorted(hdrs),
                                                               hdrs["x-acs-content-sha256"])
        hdrs.update(headers or {})
        qs = raw_query if raw_query is not None else encode(query)
        return app.build_request("POST", "/", qs, list(hdrs.items()), payload, "127.0.0.1")

    def call(self, action: str, query=(), body=(), **kw) -> tuple[int, dict]:
        """(HTTP status, body) of one call through the runner's dispatch."""
        from alikms.runner import app

        try:
            req = self.request(action, query, body, **kw)
        except Exception as exc:
            from alikms.shared import errors

            if not isinstance(exc, errors.KmsError):
                raise
            result = app.refuse(exc, "kms.test", "127.0.0.1")
        else:
            result = app.dispatch(req)
        return result["statusCode"], json.loads(result["body"])

    def ok(self, action: str, params: dict | None = None) -> dict:
        status, body = self.call(action, params or {})
        assert status == 200, (action, params, body)
        return body

    def new_records(self) -> list[dict]:
        """The call records written to the audit trail since the last time this was asked (without
        their chain fields; the trail's digests left out)."""
        records = []
        for path in audit.files(self.data_dir):
            at = self._audit_offsets.get(path.name, 0)
            with open(path, "rb") as f:
                f.seek(at)
                data = f.read()
            self._audit_offsets[path.name] = at + len(data)
            records += [{k: v for k, v in rec.items() if k not in audit.CHAIN_FIELDS}
                        for rec in map(json.loads, data.splitlines()) if "EventTime" in rec]
        return records

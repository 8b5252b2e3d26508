"""Who is calling: signature check, timestamp window and nonce replay protection.

Order of checks: scheme and credential fields, access key lookup, timestamp format, signature,
timestamp window, nonce. The nonce is recorded only after the signature verified, so nobody can
burn another caller's nonces, and it is recorded with a conditional put so two instances receiving
the same request at once accept it only once.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import errors, identity, signing
from .config import Config
from .store import NonceTableFull, Store
from .wire import HttpRequest

log = logging.getLogger("kms")

# Access key ids are 24 characters and SDK nonces 32-36 (a UUID, 32 hex digits). Both are looked up
# or stored as they came, so anything far longer is refused before it reaches a cache or the store.
MAX_ACCESS_KEY_ID = 128
MAX_NONCE = 128
_TIMESTAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z$")
_ACS3_MUST_SIGN = frozenset(("x-acs-action", "x-acs-date", "x-acs-signature-nonce"))
_ACS3 = re.compile(r"^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]*),Signature=([0-9a-f]+)$")


@dataclass(slots=True)  # built on every request: slots, not frozen, make it several times cheaper
class Caller:
    account_id: str
    access_key_id: str
    source_ip: str
    policies: tuple | None  # None: the account's own key, no policy check


@functools.lru_cache(maxsize=4096)  # requests in the same second share their stamp; refusals are not kept
def parse_timestamp(value: str) -> int:
    """`YYYY-MM-DDTHH:MM:SSZ` (UTC) -> epoch seconds; IllegalTimestamp if malformed or impossible."""
    m = _TIMESTAMP.match(value or "")
    if not m:
        raise errors.IllegalTimestamp()
    year, month, day, hour, minute, second = map(int, m.groups())
    try:
        # timegm alone would roll 2024-02-30 or 24:00 over into a real instant; refuse them instead.
        datetime.datetime(year, month, day, hour, minute, second)
        return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except ValueError as exc:
        raise errors.IllegalTimestamp() from exc


def authenticate(req: HttpRequest, query: dict[str, str], params: dict[str, str], cfg: Config, store: Store,
                 now: float) -> Caller:
    if "SecurityToken" in params or "x-acs-security-token" in req.headers:
        # STS tokens need an STS service to issue and check them; this service has none.
        raise errors.InvalidParameter("STS SecurityToken credentials are not supported by this service.")
    authz = req.headers.get("authorization", "")
    if authz.startswith("ACS3-"):
        m = _ACS3.match(authz)
        if not m:
            raise errors.IncompleteSignature()
        ak_id, signed_text, given = m.groups()
        signed = signed_text.split(";")
        present = req.headers.keys()
        if "host" not in signed or not present >= set(signed):
            raise errors.IncompleteSignature()
        if (present & _ACS3_MUST_SIGN).difference(signed):
            # Unsigned, the action could be swapped and the date and nonce renewed in transit.
            raise errors.IncompleteSignature()
        timestamp, nonce = req.headers.get("x-acs-date", ""), req.headers.get("x-acs-signature-nonce", "")
        key = _lookup(cfg, store, ak_id)
        ts = parse_timestamp(timestamp)
        body_hash = hashlib.sha256(req.body).hexdigest() if req.body else signing.EMPTY_SHA256
        canonical = signing.acs3_canonical_request(req.method, req.path, query, req.headers, signed, body_hash)
        sts = signing.acs3_string_to_sign(canonical)
        expected = signing.acs3_signature(key.secret, sts)
    elif "Signature" in params:
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            raise errors.IncompleteSignature()
        ak_id, given = params.get("AccessKeyId", ""), params["Signature"]
        timestamp, nonce = params.get("Timestamp", ""), params.get("SignatureNonce", "")
        if not ak_id:
            raise errors.MissingParameter(name="AccessKeyId")
        # v1 signs the Action parameter, not the x-acs-action header that routed the request here.
        if not params.get("Action"):
            raise errors.MissingParameter(name="Action")
        if (req.headers.get("x-acs-action") or params["Action"]) != params["Action"]:
            raise errors.InvalidAction()
        key = _lookup(cfg, store, ak_id)
        ts = parse_timestamp(timestamp)
        sts = signing.rpc_v1_string_to_sign(req.method, params)
        expected = signing.rpc_v1_signature(key.secret, sts)
    else:
        raise errors.IncompleteSignature()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise errors.SignatureDoesNotMatch(sts=sts)
    if abs(now - ts) > cfg.clock_skew:
        raise errors.InvalidTimeStampExpired()
    if not nonce:
        raise errors.MissingParameter(name="SignatureNonce")
    if len(nonce) > MAX_NONCE:
        raise errors.InvalidParameter(name="SignatureNonce")
    # Remember the nonce for `skew` after it was used, or until its request's stamp leaves the
    # window if that is later (a stamp up to `skew` in the future stays acceptable that long).
    ttl = cfg.clock_skew + max(0, ts - int(now))
    try:
        fresh = store.remember_nonce(f"{ak_id}/{nonce}", int(now), ttl)
    except NonceTableFull:
        _warn_full(now)
        raise errors.Throttling() from None
    if not fresh:
        raise errors.SignatureNonceUsed()
    return Caller(key.account_id, ak_id, req.source_ip, key.policies)


_warned = [0.0]


def _warn_full(now: float) -> None:
    """Say why requests are being throttled (once a minute): the operator can size the table."""
    if now - _warned[0] >= 60:
        _warned[0] = now
        log.warning("nonce table full: signed requests are refused (Throttling) until nonces expire; "
                    "raise KMS_NONCE_SLOTS for more than ~700 requests/s per million slots over 15 minutes")


def claimed_access_key(req: HttpRequest, params: Mapping[str, object]) -> str:
    """The AccessKeyId a request presents, verified or not (for the audit trail of refusals)."""
    m = _ACS3.match(req.headers.get("authorization", ""))
    claimed = m.group(1) if m else params.get("AccessKeyId", "")
    return claimed if isinstance(claimed, str) else ""  # the runner keeps a repeated name as a list


def _lookup(cfg: Config, store: Store, ak_id: str) -> identity.AccessKey:
    key = identity.lookup(store, cfg, ak_id) if len(ak_id) <= MAX_ACCESS_KEY_ID else None
    if key is None:
        raise errors.InvalidAccessKeyIdNotFound()
    if not key.enabled:
        raise errors.ForbiddenAccessKey()
    return key

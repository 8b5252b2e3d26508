"""Authorization, in one place: which resources a call touches (from the registry) and whether the
caller's policies allow the RAM action on each.

Keys named by alias are checked as the key they point to, as Alibaba does (a RAM user needs
permission on the key, not the alias). A key inside a ciphertext is read from the blob's header.
The account's own keys (no policies) skip the check. The same resolution gives the audit trail its
resource ARNs.
"""

from __future__ import annotations

import base64
import binascii

from . import errors, policy, registry
from .auth import Caller
from .crypto import blob


def resources(spec: registry.Action, params: dict[str, str], account_id: str, region: str,
              store=None) -> list[tuple[str, str]]:
    """[(RAM action, resource ARN)] for a call. With `store`, aliases resolve to their key."""
    out = []
    base = f"acs:kms:{region}:{account_id}"
    for entry in spec.resources:
        kind, param = entry[0], entry[1]
        action = entry[2] if len(entry) > 2 else spec.ram_action
        value = params.get(param) if param else None
        if param and value is None:
            continue  # optional parameter not given
        if param == "CiphertextBlob" and params.get("SourceKeyId") is not None:
            continue  # ReEncrypt of an asymmetric ciphertext: the source key is named, not in a blob
        out.append((action, _arn(base, kind, param, value, f"{account_id}/{region}", store)))
    if not out:  # nothing named (or an action on the account): the account as a whole
        out.append((spec.ram_action, f"{base}:*"))
    return out


def _arn(base: str, kind: str, param: str | None, value: str | None, partition: str, store) -> str:
    if value is None:
        return f"{base}:{kind}/*"
    if value.startswith("acs:kms:"):
        prefix, _, name = value.rpartition(":alias/")
        if kind == "key" and prefix == base:  # this account's alias ARN: check the key behind it
            value = "alias/" + name
        else:
            return value
    if param == "CiphertextBlob":
        try:
            return f"{base}:key/{blob.parse(base64.b64decode(value, validate=True)).key_id}"
        except (binascii.Error, ValueError, blob.InvalidBlob):
            return f"{base}:key/*"
    if kind == "key" and value.startswith("alias/"):
        item = store.get("aliases", partition, value) if store else None
        return f"{base}:key/{item.data['key_id']}" if item else f"{base}:alias/{value[6:]}"
    if kind == "alias":
        return f"{base}:alias/{value[6:] if value.startswith('alias/') else value}"
    return f"{base}:{kind}/{value}"


def check(caller: Caller, spec: registry.Action, params: dict[str, str], region: str, store) -> None:
    """Raise Forbidden.NoPermission unless the caller may make this call."""
    if caller.policies is None:
        return
    context = {"acs:sourceip": caller.source_ip}
    for action, arn in resources(spec, params, caller.account_id, region, store):
        result = policy.evaluate(list(caller.policies), action, [arn], context)
        if result != policy.ALLOW:
            raise errors.ForbiddenNoPermission(extra={"AccessDeniedDetail": {
                "AuthAction": action, "NoPermissionType": result,
                "PolicyType": "AccountLevelIdentityBasedPolicy", "AuthPrincipalType": "SubUser"}})

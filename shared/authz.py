"""Authorization, in one place: which resources a call touches (from the registry) and whether the
caller's policies allow the RAM action on each.

The resources come from the validated request model, the same parse the action runs on, never from
the raw parameters: a resource the check saw is the resource the action uses and the audit record
names. The registry declares them by wire name; `_plan` maps each to its request-model field once.

Keys named by alias are checked as the key they point to, as Alibaba does (a RAM user needs
permission on the key, not the alias), and the action then runs on that same key (`pin`): were it
to look the alias up again, an UpdateAlias landing in between would have it use a key the check
never saw. A key inside a ciphertext is read from the blob's header. A secret's value is also protected by the
KMS key that encrypts it (`registry.Action.secret_key`): that key is read from the stored secret.
The account's own keys (no policies) skip the check and the secret's key lookup that only the check
needs, but their aliases resolve too: the same resolution gives the audit trail its resource ARNs,
and a record names the key the action used whoever the caller.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from . import errors, policy, registry, secrets
from .auth import Caller
from .crypto import blob
from .records import Alias, Secret

if TYPE_CHECKING:
    from pydantic import BaseModel

_plans: dict[type, tuple] = {}  # request model -> its plan (a model serves one action)


def _plan(spec: registry.Action, model: type[BaseModel]) -> tuple[tuple[str, str | None, str | None, str], ...]:
    """(kind, wire parameter, model field, RAM action) for each resource the registry declares.
    A parameter the request model does not have is a registry mistake, refused loudly."""
    plan = _plans.get(model)
    if plan is None:
        plan = _plans[model] = _make_plan(spec, model)
    return plan


def _make_plan(spec: registry.Action, model: type[BaseModel]) -> tuple[tuple[str, str | None, str | None, str], ...]:
    fields = {(f.alias or name): name for name, f in model.model_fields.items()}
    plan = []
    for entry in spec.resources:
        kind, param = entry[0], entry[1]
        if param is not None and param not in fields:
            raise LookupError(f"registry: {spec.name} names {param}, which {model.__name__} does not have")
        action = entry[2] if len(entry) > 2 else spec.ram_action
        plan.append((kind, param, fields.get(param) if param is not None else None, action))
    return tuple(plan)


def resources(spec: registry.Action, request: Any, account_id: str, region: str,
              store=None, resolved: dict[str, str] | None = None, secret_key: bool = True,
              read: dict | None = None) -> list[tuple[str, str]]:
    """[(RAM action, resource ARN)] for a validated `request`. With `store`, aliases resolve to their
    key, and `resolved` (if given) receives {model field: key id} for each alias so resolved; with
    `secret_key` too, a secret's customer key is added (a store read: only a policy needs it), and
    the secret read for it goes into `read` (if given) for the action (Context.read)."""
    out = []
    base = f"acs:kms:{region}:{account_id}"
    for kind, param, field, action in _plan(spec, type(request)):
        value = getattr(request, field) if field else None
        if param and value is None:
            continue  # optional parameter not given
        if param == "CiphertextBlob" and getattr(request, "source_key_id", None) is not None:
            continue  # ReEncrypt of an asymmetric ciphertext: the source key is named, not in a blob
        arn = _arn(base, kind, param, value, f"{account_id}/{region}", store)
        out.append((action, arn))
        if resolved is not None and field is not None and kind == "key" and value \
                and value.startswith(("alias/", f"{base}:alias/")) and arn.startswith(f"{base}:key/"):
            resolved[field] = arn[len(base) + 5:]  # an alias (name or this account's ARN) found its key
    if not out:  # nothing named (or an action on the account): the account as a whole
        out.append((spec.ram_action, f"{base}:*"))
    elif spec.secret_key and secret_key and store is not None:
        name = secrets.name_in(request.secret_name, region, account_id)
        key_arn = _secret_key_arn(base, name, f"{account_id}/{region}", store, read) if name else None
        if key_arn is not None:
            out.append((spec.secret_key, key_arn))
    return out


def _secret_key_arn(base: str, name: str, partition: str, store, read: dict | None = None) -> str | None:
    """The ARN of the customer key that encrypts a secret's values, or None: no such secret here (the
    action answers that) or the secrets service's own key. The key of a secret never changes, so the
    action uses the key checked here."""
    secret = Secret.get(store, partition, name)
    if secret is not None and read is not None:
        read[name] = secret
    if secret is None or secret.encryption_key_id == secrets.service_key_id(partition):
        return None
    return f"{base}:key/{secret.encryption_key_id}"


def pin(spec: registry.Action, request: Any, resolved: dict[str, str]) -> Any:
    """The request with each alias the check resolved replaced by its key id, so the action uses the
    key that was checked. Only where the action takes aliases: elsewhere it refuses them anyway."""
    return request.model_copy(update=resolved) if resolved and spec.key_aliases else request


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
        alias = Alias.get(store, partition, value) if store else None
        return f"{base}:key/{alias.key_id}" if alias else f"{base}:alias/{value[6:]}"
    if kind == "alias":
        return f"{base}:alias/{value[6:] if value.startswith('alias/') else value}"
    return f"{base}:{kind}/{value}"


def check(caller: Caller, found: list[tuple[str, str]]) -> None:
    """Raise Forbidden.NoPermission unless the caller may act on every one of `found` (`resources`)."""
    if caller.policies is None:
        return
    context = {"acs:sourceip": caller.source_ip}
    for action, arn in found:
        result = policy.evaluate(list(caller.policies), action, [arn], context)
        if result != policy.ALLOW:
            raise errors.ForbiddenNoPermission(extra={"AccessDeniedDetail": {
                "AuthAction": action, "NoPermissionType": result,
                "PolicyType": "AccountLevelIdentityBasedPolicy", "AuthPrincipalType": "SubUser"}})

"""Which resource a TagResource / UntagResource / ListResourceTags call addresses, and the tag
writes themselves. Tags live inside the resource's own row, so a tag change is one conditional
update of that row and a deleted resource takes its tags with it."""

from __future__ import annotations

from collections.abc import Callable

from . import errors, keys, secrets
from .context import Context
from .records import Key, Secret


def one_resource(key_id: str | None, secret_name: str | None, certificate_id: str | None) -> tuple[str, str]:
    """Exactly one of KeyId / SecretName / CertificateId; returns which, and its value."""
    given = [(n, v) for n, v in (("KeyId", key_id), ("SecretName", secret_name), ("CertificateId", certificate_id))
             if v is not None]
    if len(given) != 1:
        raise errors.InvalidParameter(name="KeyId")
    if given[0][0] == "CertificateId":  # certificates are not part of this service: none can exist
        raise errors.ResourceNotFound()
    return given[0]


def change_key_tags(ctx: Context, key_id_param: str, change: Callable[[dict[str, str]], None]) -> None:
    def apply(key: Key) -> None:
        tags = dict(key.tags or {})
        change(tags)
        key.tags = tags

    keys.mutate(ctx, key_id_param, "tag", apply)


def change_secret_tags(ctx: Context, secret_name: str, change: Callable[[dict[str, str]], None]) -> None:
    def apply(secret: Secret) -> None:
        tags = dict(secret.tags)
        change(tags)
        secret.tags = tags

    secrets.mutate(ctx, secret_name, apply)


def merge(limit: int, new: dict[str, str]) -> Callable[[dict[str, str]], None]:
    def apply(tags: dict[str, str]) -> None:
        tags.update(new)  # an existing TagKey gets the new value
        if len(tags) > limit:
            raise errors.LimitExceeded()

    return apply


def remove(names: list[str]) -> Callable[[dict[str, str]], None]:
    def apply(tags: dict[str, str]) -> None:
        for name in names:
            tags.pop(name, None)  # removing an absent tag is not an error

    return apply




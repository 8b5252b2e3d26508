"""Aliases (`records.Alias`: an `alias/<name>` pointing at a key id) as the alias actions list them."""

from __future__ import annotations

from . import lifecycle
from .context import Context
from .records import Alias, Key


def live(ctx: Context) -> list[Alias]:
    """The account's aliases whose key still exists (an overdue PendingDeletion key is gone)."""
    keys_by_id = {k.key_id: k for k in Key.all(ctx.store, ctx.scope)}
    return [a for a in Alias.all(ctx.store, ctx.scope)
            if a.key_id in keys_by_id and not lifecycle.is_gone(keys_by_id[a.key_id], ctx.now)]


def of_key(ctx: Context, key_id: str) -> list[Alias]:
    return [a for a in Alias.all(ctx.store, ctx.scope) if a.key_id == key_id]


def entry(ctx: Context, alias: Alias) -> dict:
    return {"AliasArn": ctx.arn("alias", alias.name[len("alias/"):]), "AliasName": alias.name, "KeyId": alias.key_id}

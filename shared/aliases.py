"""Alias rows (`aliases` table, partition = account/region, sort key = `alias/<name>`, data = key id)."""

from __future__ import annotations

from . import lifecycle
from .context import Context
from .store import Item


def live(ctx: Context) -> list[Item]:
    """The account's aliases whose key still exists (an overdue PendingDeletion key is gone)."""
    keys_by_id = {i.sk: i.data for i in ctx.store.query_all("keys", ctx.scope)}
    return [a for a in ctx.store.query_all("aliases", ctx.scope)
            if a.data["key_id"] in keys_by_id and not lifecycle.is_gone(keys_by_id[a.data["key_id"]], ctx.now)]


def entry(ctx: Context, alias: Item) -> dict:
    return {"AliasArn": ctx.arn("alias", alias.sk[len("alias/"):]), "AliasName": alias.sk, "KeyId": alias.data["key_id"]}

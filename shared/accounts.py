"""Whether an account has opened KMS (`OpenKmsService`), and the check every other action makes.

An opened account never closes (the API has no such action), so a warm instance remembers opened
accounts and skips the store read on later calls.
"""

from __future__ import annotations

from . import errors
from .config import Config
from .store import Conflict, Store

ENABLED = "Enabled"
NOT_ENABLED = "NotEnabled"

_opened: set[str] = set()


def status(store: Store, cfg: Config, account_id: str) -> str:
    if account_id in _opened:
        return ENABLED
    row = store.get("accounts", account_id)
    if row is not None:
        value = row.data["Status"]
    else:
        # The bootstrap account of a local runner starts opened unless KMS_AUTO_OPEN=false.
        value = ENABLED if cfg.auto_open and account_id == cfg.account_id else NOT_ENABLED
    if value == ENABLED:
        _opened.add(account_id)
    return value


def require_open(store: Store, cfg: Config, account_id: str) -> None:
    if status(store, cfg, account_id) != ENABLED:
        raise errors.ForbiddenKmsServiceNotEnabled()


def open_service(store: Store, cfg: Config, account_id: str, now: float) -> None:
    if status(store, cfg, account_id) == ENABLED:
        raise errors.ForbiddenOpened()
    try:
        store.put_new("accounts", account_id, "", {"Status": ENABLED, "OpenedAt": int(now)})
    except Conflict:  # another instance opened it first: the second call is the repeated one
        raise errors.ForbiddenOpened() from None
    _opened.add(account_id)

"""Whether an account has opened KMS (`OpenKmsService`), and the check every other action makes.

An opened account never closes (the API has no such action), so a warm instance remembers opened
accounts and skips the store read on later calls.
"""

from __future__ import annotations

from . import errors
from .config import Config
from .records import Account
from .store import Conflict, Store

ENABLED = "Enabled"
NOT_ENABLED = "NotEnabled"

_opened: set[str] = set()


def status(store: Store, cfg: Config, account_id: str) -> str:
    if account_id in _opened:
        return ENABLED
    row = Account.get(store, account_id)
    if row is not None:
        value = row.status
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
        Account(account_id=account_id, status=ENABLED, opened_at=int(now)).insert(store)
    except Conflict:  # another instance opened it first: the second call is the repeated one
        raise errors.ForbiddenOpened() from None
    _opened.add(account_id)

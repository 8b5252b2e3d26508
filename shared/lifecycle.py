"""Key-state rules, in one place: the API reference's key-state table (`kms-api.md` §4).

Pure functions of a key record and the clock. A key past its `DeleteDate` is already gone here,
even before the deletion sweep removes its rows; reads never write.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from . import errors

if TYPE_CHECKING:
    from .records import Key

ENABLED, DISABLED, PENDING_DELETION, PENDING_IMPORT = "Enabled", "Disabled", "PendingDeletion", "PendingImport"
STATES = (ENABLED, DISABLED, PENDING_DELETION, PENDING_IMPORT)

OK = None
_REJECTED = {
    DISABLED: errors.RejectedDisabled,
    PENDING_DELETION: errors.RejectedPendingDeletion,
    PENDING_IMPORT: errors.RejectedPendingImport,
}
_STATE_FAILED: type[errors.KmsError] = errors.StateModifiedFailed
_USE = {ENABLED: OK, **_REJECTED}  # crypto-style: only Enabled keys may be used
_TOGGLE = {ENABLED: OK, DISABLED: OK, PENDING_DELETION: _STATE_FAILED, PENDING_IMPORT: _STATE_FAILED}

# operation -> {state: error class or OK}
RULES: dict[str, dict[str, type[errors.KmsError] | None]] = {
    "use": _USE,  # Encrypt, Decrypt, GenerateDataKey*, ReEncrypt, asymmetric ops, CreateKeyVersion...
    "describe": dict.fromkeys(STATES, OK),
    "update_description": {ENABLED: OK, DISABLED: OK, PENDING_DELETION: errors.RejectedPendingDeletion,
                           PENDING_IMPORT: OK},
    "enable": _TOGGLE,
    "disable": _TOGGLE,
    "schedule_deletion": {ENABLED: OK, DISABLED: OK, PENDING_DELETION: _STATE_FAILED, PENDING_IMPORT: OK},
    "cancel_deletion": {ENABLED: _STATE_FAILED, DISABLED: _STATE_FAILED, PENDING_DELETION: OK,
                        PENDING_IMPORT: _STATE_FAILED},
    "create_alias": {ENABLED: OK, DISABLED: OK, PENDING_DELETION: _STATE_FAILED, PENDING_IMPORT: OK},
    "alias_target": {ENABLED: OK, DISABLED: OK, PENDING_DELETION: errors.RejectedPendingDeletion,
                     PENDING_IMPORT: OK},
    "tag": {ENABLED: OK, DISABLED: OK, PENDING_DELETION: errors.RejectedPendingDeletion, PENDING_IMPORT: OK},
    "rotation_policy": _USE,
    "import_material": {ENABLED: OK, DISABLED: OK, PENDING_DELETION: _STATE_FAILED, PENDING_IMPORT: OK},
}


def is_gone(key: Key, now: float) -> bool:
    """An overdue PendingDeletion key behaves as deleted."""
    return key.state == PENDING_DELETION and key.delete_date is not None and key.delete_date <= now


def effective(key: Key, now: float) -> Key:
    """The key as callers see it now: imported material past its expiry leaves the key in
    PendingImport until the material is imported again (the expiry sweep then makes it so)."""
    expires = key.material_expire_time
    if expires is not None and expires <= now and key.state in (ENABLED, DISABLED):
        return replace(key, state=PENDING_IMPORT)
    return key


# The secrets service's own key (CreatorType Service) protects every secret of the account that was
# created without an EncryptionKeyId; like Alibaba's service-managed keys it cannot be turned off.
SERVICE_KEY_REFUSES = ("disable", "schedule_deletion")


def require(operation: str, key: Key) -> None:
    """Raise the documented error if `operation` is not allowed in the key's state."""
    if operation in SERVICE_KEY_REFUSES and key.creator_type == "Service":
        raise errors.RejectedUnsupportedOperation()
    error = RULES[operation][key.state]
    if error is not None:
        raise error()


def set_state(state: str):
    """A change for keys.mutate that moves a key to `state` (EnableKey, DisableKey)."""
    def change(key: Key) -> None:
        key.state = state

    return change


def rotation_status(key: Key) -> str:
    """`AutomaticRotation`: Suspended while the key cannot be used (Disabled / PendingDeletion)."""
    if not key.automatic_rotation:
        return "Disabled"
    return "Enabled" if key.state == ENABLED else "Suspended"

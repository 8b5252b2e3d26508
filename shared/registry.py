"""The one list of actions and timer jobs.

Everything else is derived from it: each function module finds its own entry here (by module
name), the local runner routes on it, and `deploy/templates.py` writes `template.yml`,
`s.yaml` and the API Gateway routing from it. An action is registered only once it is complete;
anything not listed answers `InvalidAction.NotFound`.

Each action names its RAM action (`kms:<Name>`) and the resources a call touches, as
`(kind, parameter[, ram action])`: the parameter that names the resource (`None` = the call
addresses the kind as a whole, `acs:kms:REGION:ACCOUNT:key/*`), and the RAM action checked on it
when it is not the action's own (ReEncrypt checks kms:ReEncryptFrom and kms:ReEncryptTo).
`alikms.shared.authz` resolves these in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Action:
    name: str
    section: str  # package under functions/
    # (kind, parameter or None for all of a kind[, the RAM action when not the action's own]) of each
    # resource the action touches (authz reads them)
    resources: tuple[tuple[str, str | None] | tuple[str, str | None, str], ...] = ()
    # Actions a caller may use before the account has opened KMS.
    before_open: bool = False
    # Whether its KeyId accepts an alias name (the reference lists which actions do); a key id and
    # a key ARN are always accepted.
    key_aliases: bool = False
    # The RAM action checked on the KMS key that encrypts the named secret's values, where the call
    # uses that key (kms-api.md §11.0: kms:Decrypt to read a value, kms:GenerateDataKey to write one).
    # The key is found from the stored secret (`authz`); the service's own secrets key needs no grant.
    secret_key: str | None = None

    @cached_property  # asked on every request by the runner's routing
    def module(self) -> str:
        return f"alikms.functions.{self.section}.{snake(self.name)}"

    @property
    def ram_action(self) -> str:
        return f"kms:{self.name}"


@dataclass(frozen=True)
class Job:
    name: str
    cron: str  # Function Compute timer: six fields, seconds first, UTC
    payload: str = "{}"

    @property
    def module(self) -> str:
        return f"alikms.functions.jobs.{snake(self.name)}"


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


KEY = ("key", "KeyId")
ALL_KEYS = ("key", None)
ALIAS = ("alias", "AliasName")
SECRET = ("secret", "SecretName")
BLOB_KEY = ("key", "CiphertextBlob")  # the key named inside a ciphertext

ACTIONS: tuple[Action, ...] = (
    # keys
    Action("CreateKey", "keys", (ALL_KEYS,)),
    Action("DescribeKey", "keys", (KEY,), key_aliases=True),
    Action("ListKeys", "keys", (ALL_KEYS,)),
    Action("EnableKey", "keys", (KEY,)),
    Action("DisableKey", "keys", (KEY,)),
    Action("ScheduleKeyDeletion", "keys", (KEY,)),
    Action("CancelKeyDeletion", "keys", (KEY,)),
    Action("UpdateKeyDescription", "keys", (KEY,)),
    Action("GetParametersForImport", "keys", (KEY,)),
    Action("ImportKeyMaterial", "keys", (KEY,)),
    Action("DeleteKeyMaterial", "keys", (KEY,)),
    # versions
    Action("DescribeKeyVersion", "versions", (KEY,), key_aliases=True),
    Action("ListKeyVersions", "versions", (KEY,), key_aliases=True),
    Action("UpdateRotationPolicy", "versions", (KEY,)),
    Action("CreateKeyVersion", "versions", (KEY,), key_aliases=True),
    # cryptography
    Action("Encrypt", "crypto", (KEY,), key_aliases=True),
    Action("Decrypt", "crypto", (BLOB_KEY,)),
    Action("GenerateDataKey", "crypto", (KEY,), key_aliases=True),
    Action("GenerateDataKeyWithoutPlaintext", "crypto", (KEY,), key_aliases=True),
    Action("ReEncrypt", "crypto", (BLOB_KEY + ("kms:ReEncryptFrom",), ("key", "DestinationKeyId", "kms:ReEncryptTo"),
                                   ("key", "SourceKeyId", "kms:ReEncryptFrom")), key_aliases=True),
    Action("AsymmetricSign", "crypto", (KEY,), key_aliases=True),
    Action("AsymmetricVerify", "crypto", (KEY,), key_aliases=True),
    Action("AsymmetricEncrypt", "crypto", (KEY,), key_aliases=True),
    Action("AsymmetricDecrypt", "crypto", (KEY,), key_aliases=True),
    Action("GetPublicKey", "crypto", (KEY,), key_aliases=True),
    Action("ExportDataKey", "crypto", (BLOB_KEY,)),
    Action("GenerateAndExportDataKey", "crypto", (KEY,), key_aliases=True),
    # aliases
    Action("CreateAlias", "aliases", (KEY, ALIAS)),
    Action("UpdateAlias", "aliases", (KEY, ALIAS)),
    Action("DeleteAlias", "aliases", (ALIAS,)),
    Action("ListAliases", "aliases", (("alias", None),)),
    Action("ListAliasesByKeyId", "aliases", (KEY,)),
    # secrets
    Action("CreateSecret", "secrets", (SECRET, ("key", "EncryptionKeyId", "kms:GenerateDataKey"))),
    Action("ListSecrets", "secrets", (("secret", None),)),
    Action("DeleteSecret", "secrets", (SECRET,)),
    Action("DescribeSecret", "secrets", (SECRET,)),
    Action("GetSecretValue", "secrets", (SECRET,), secret_key="kms:Decrypt"),
    Action("PutSecretValue", "secrets", (SECRET,), secret_key="kms:GenerateDataKey"),
    Action("UpdateSecret", "secrets", (SECRET,)),
    Action("UpdateSecretVersionStage", "secrets", (SECRET,)),
    Action("RestoreSecret", "secrets", (SECRET,)),
    Action("ListSecretVersionIds", "secrets", (SECRET,)),
    Action("GetRandomPassword", "secrets"),
    # tags
    Action("TagResource", "tags", (KEY, SECRET), key_aliases=True),
    Action("UntagResource", "tags", (KEY, SECRET)),
    Action("ListResourceTags", "tags", (KEY,)),
    # other
    Action("DescribeRegions", "other", before_open=True),
    Action("OpenKmsService", "other", before_open=True),
    Action("DescribeAccountKmsStatus", "other", before_open=True),
)

JOBS: tuple[Job, ...] = (
    Job("RotateKeys", "0 */10 * * * *"),
    Job("DeleteExpiredKeys", "0 5 * * * *"),
    Job("DeleteExpiredSecrets", "0 15 * * * *"),
    Job("ExpireKeyMaterial", "0 */5 * * * *"),
)

_BY_NAME = {a.name: a for a in ACTIONS}
_BY_MODULE = {a.module: a for a in ACTIONS}
_JOBS_BY_MODULE = {j.module: j for j in JOBS}


def action(name: str) -> Action | None:
    return _BY_NAME.get(name)


def action_for_module(module: str) -> Action:
    return _BY_MODULE[module]


def job_for_module(module: str) -> Job:
    return _JOBS_BY_MODULE[module]

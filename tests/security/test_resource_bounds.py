"""Rows a caller can make are bounded. Found by the attack pass after issues 11/15/16:

* CreateKeyVersion on a symmetric key had no limit: ~1,100 versions a second through the runner, and
  ListKeyVersions reads every version row, so 30,000 versions made each list call take 0.3 s on the
  worker's event loop (eight at once held a DescribeRegions for 3 s), growing without end. A key now
  has at most MAX_SYMMETRIC_VERSIONS versions made by CreateKeyVersion.
* GetParametersForImport stored a new import token (a wrapped RSA private key) on every call, removed
  only by the ExpireKeyMaterial timer once its 24 hours had passed: a caller could add rows without
  end within them. At most MAX_TOKENS now stay live per key (the oldest goes first)."""

from __future__ import annotations

from alikms.functions.versions.create_key_version import MAX_SYMMETRIC_VERSIONS
from alikms.shared import byok
from alikms.shared.records import ImportToken, Key
from tests.support import err, ok

SCOPE = "1234567890123456/cn-hangzhou"
PARAMS = {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}


def test_a_symmetric_key_has_a_bounded_number_of_versions(kms):
    key_id = ok(kms, "CreateKey")["KeyMetadata"]["KeyId"]
    key = Key.get(kms.store, SCOPE, key_id)
    key.version_count = MAX_SYMMETRIC_VERSIONS - 1  # as if made one by one (only the count is checked)
    key.save(kms.store)
    made = ok(kms, "CreateKeyVersion", {"KeyId": key_id})["KeyVersion"]["KeyVersionId"]
    err(kms, "CreateKeyVersion", {"KeyId": key_id}, "Rejected.LimitExceeded", 400)
    assert ok(kms, "DescribeKey", {"KeyId": key_id})["KeyMetadata"]["PrimaryKeyVersion"] == made
    assert Key.get(kms.store, SCOPE, key_id).version_count == MAX_SYMMETRIC_VERSIONS
    assert 50 <= MAX_SYMMETRIC_VERSIONS <= 1000


def _tokens(kms, key_id: str) -> list[str]:
    return [item.sk for item in kms.store.query_all("import_tokens", f"{SCOPE}/{key_id}")]


def test_import_tokens_are_bounded_per_key(kms):
    key_id = ok(kms, "CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
    made = [ok(kms, "GetParametersForImport", {"KeyId": key_id, **PARAMS})["ImportToken"]
            for _ in range(byok.MAX_TOKENS + 3)]
    assert sorted(_tokens(kms, key_id)) == sorted(made[3:])  # the three oldest went
    assert ImportToken.get(kms.store, SCOPE, key_id, made[-1]).created > 0
    # Tokens of other keys are not counted, nor touched.
    other = ok(kms, "CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
    mine = ok(kms, "GetParametersForImport", {"KeyId": other, **PARAMS})["ImportToken"]
    assert _tokens(kms, other) == [mine] and sorted(_tokens(kms, key_id)) == sorted(made[3:])

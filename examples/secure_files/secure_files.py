"""secure_files: a small application that keeps files encrypted at rest with Alibaba Cloud KMS.

* `encrypt_file` / `decrypt_file`: envelope encryption. KMS makes a data key (GenerateDataKey), the
  file is sealed locally with AES-256-GCM under it, and only the KMS-encrypted copy of the data key
  is stored beside the data. Opening the file asks KMS to decrypt that copy (Decrypt).
* `database_password`: the database password from Secrets Manager (GetSecretValue).

It talks to the real cloud: credentials from the default variables (`ALIBABA_CLOUD_ACCESS_KEY_ID`,
`ALIBABA_CLOUD_ACCESS_KEY_SECRET`), the region from `ALIBABA_CLOUD_REGION_ID`. Its tests
(test_secure_files.py) run it unchanged under alikms's `mock_kms`.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.models import Config
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ALIAS = "alias/secure-files"
PASSWORD_SECRET = "prod/db/password"
FORMAT = 1


def kms_client() -> Client:
    return Client(Config(access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                         access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                         region_id=os.environ.get("ALIBABA_CLOUD_REGION_ID", "cn-hangzhou")))


def encrypt_file(src: str | Path, dst: str | Path, *, client: Client | None = None, key: str = KEY_ALIAS) -> None:
    client = client or kms_client()
    name = Path(src).name
    data_key = client.generate_data_key(models.GenerateDataKeyRequest(
        key_id=key, key_spec="AES_256", encryption_context={"file": name})).body
    nonce = os.urandom(12)
    sealed = AESGCM(base64.b64decode(data_key.plaintext)).encrypt(nonce, Path(src).read_bytes(), name.encode())
    envelope = {"format": FORMAT, "name": name, "key": data_key.ciphertext_blob,
                "nonce": base64.b64encode(nonce).decode(), "data": base64.b64encode(sealed).decode()}
    Path(dst).write_text(json.dumps(envelope))


def decrypt_file(src: str | Path, dst: str | Path, *, client: Client | None = None) -> None:
    client = client or kms_client()
    envelope = json.loads(Path(src).read_text())
    if envelope.get("format") != FORMAT:
        raise ValueError("not a secure_files envelope")
    data_key = client.decrypt(models.DecryptRequest(ciphertext_blob=envelope["key"],
                                                    encryption_context={"file": envelope["name"]})).body.plaintext
    plain = AESGCM(base64.b64decode(data_key)).decrypt(base64.b64decode(envelope["nonce"]),
                                                       base64.b64decode(envelope["data"]), envelope["name"].encode())
    Path(dst).write_bytes(plain)


def database_password(*, client: Client | None = None, name: str = PASSWORD_SECRET) -> str:
    client = client or kms_client()
    return client.get_secret_value(models.GetSecretValueRequest(secret_name=name)).body.secret_data

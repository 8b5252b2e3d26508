"""What each KeySpec can do (`kms-api.md` §3): usages, default usage, algorithms and plaintext caps.

One table, so CreateKey, the asymmetric actions, rotation and export all ask the same question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENCRYPT_DECRYPT, SIGN_VERIFY = "ENCRYPT/DECRYPT", "SIGN/VERIFY"


@dataclass(frozen=True)
class KeySpec:
    symmetric: bool
    usages: tuple[str, ...]
    sign: tuple[str, ...] = ()
    encrypt: dict[str, int] = field(default_factory=dict)  # algorithm -> max plaintext bytes

    @property
    def default_usage(self) -> str:
        # The reference is ambiguous for specs that do both; ENCRYPT/DECRYPT is the schema default.
        return self.usages[0]


SPECS: dict[str, KeySpec] = {
    "Aliyun_AES_256": KeySpec(True, (ENCRYPT_DECRYPT,)),
    "Aliyun_AES_128": KeySpec(True, (ENCRYPT_DECRYPT,)),
    "Aliyun_AES_192": KeySpec(True, (ENCRYPT_DECRYPT,)),
    "Aliyun_SM4": KeySpec(True, (ENCRYPT_DECRYPT,)),
    "RSA_2048": KeySpec(False, (ENCRYPT_DECRYPT, SIGN_VERIFY), ("RSA_PSS_SHA_256", "RSA_PKCS1_SHA_256"),
                        {"RSAES_OAEP_SHA_256": 190, "RSAES_OAEP_SHA_1": 214}),
    "RSA_3072": KeySpec(False, (ENCRYPT_DECRYPT, SIGN_VERIFY), ("RSA_PSS_SHA_256", "RSA_PKCS1_SHA_256"),
                        {"RSAES_OAEP_SHA_256": 318, "RSAES_OAEP_SHA_1": 342}),
    "EC_P256": KeySpec(False, (SIGN_VERIFY,), ("ECDSA_SHA_256",)),
    "EC_P256K": KeySpec(False, (SIGN_VERIFY,), ("ECDSA_SHA_256",)),
    "EC_SM2": KeySpec(False, (ENCRYPT_DECRYPT, SIGN_VERIFY), ("SM2DSA",), {"SM2PKE": 6047}),
}
SYMMETRIC = tuple(name for name, spec in SPECS.items() if spec.symmetric)
ASYMMETRIC = tuple(name for name, spec in SPECS.items() if not spec.symmetric)

# Wrapping for ExportDataKey / GenerateAndExportDataKey and for BYOK import.
EXPORT_WRAPPING = {"RSA_2048": ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"), "EC_SM2": ("SM2PKE",)}
IMPORT_WRAPPING = {"RSA_2048": ("RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"), "EC_SM2": ("SM2PKE",)}

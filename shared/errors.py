"""Alibaba KMS error codes: one class per wire code, serialised in one place (`to_body`).

Codes, statuses and messages follow the KMS API reference (common errors table and the per-action
lists). Gateway-level codes that the KMS pages do not list (`SignatureDoesNotMatch`,
`InvalidTimeStamp.Expired`, `SignatureNonceUsed`) use the wording of Alibaba's shared POP gateway,
which is what the SDKs meet in front of every product.

Messages never carry key material, plaintext, secret values or another tenant's identifiers.
"""

from __future__ import annotations


class KmsError(Exception):
    """Base of every error that reaches the wire. Subclasses set `code`, `status`, `message`."""

    code = "InternalFailure"
    status = 500
    message = "Internal Failure."

    def __init__(self, message: str | None = None, extra: dict | None = None, **fmt: str) -> None:
        if message is None:
            message = self.message.format(**fmt) if fmt else self.message
        self.detail = message
        self.extra = extra or {}  # more body fields, e.g. AccessDeniedDetail on a 403
        super().__init__(message)

    def to_body(self, request_id: str, host: str) -> dict:
        return {
            "RequestId": request_id,
            "HostId": host,
            "Code": self.code,
            "Message": self.detail,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={self.code}&product=Kms&requestId={request_id}",
            "HttpStatus": self.status,
            **self.extra,
        }


def _error(code: str, status: int, message: str) -> type[KmsError]:
    return type(code.replace(".", "_"), (KmsError,), {"code": code, "status": status, "message": message})


# --- request, signature and identity (gateway level) ---
InternalFailure = _error("InternalFailure", 500, "Internal Failure.")
ServiceUnavailableTemporary = _error("ServiceUnavailableTemporary", 503, "Service Unavailable Temporary.")
ParseRequestParameterException = _error(
    "ParseRequestParameterException", 400, "Server parse parameters exception. Please check your input params."
)
MissingParameter = _error("MissingParameter", 400, 'The parameter "{name}" is needed but not provided.')
InvalidParameter = _error("InvalidParameter", 400, 'The specified parameter "{name}" is not valid.')
IncompleteSignature = _error(
    "IncompleteSignature", 400, "The request signature does not conform to Alibaba Cloud standards."
)
SignatureDoesNotMatch = _error(
    "SignatureDoesNotMatch",
    400,
    # The classic Python SDK splits this message on ':' and compares the tail with its own
    # string-to-sign, so the wording and the colon are part of the contract.
    "Specified signature is not matched with our calculation. server string to sign is:{sts}",
)
IllegalTimestamp = _error(
    "IllegalTimestamp",
    400,
    'The input parameter "Timestamp" that is required for processing this request is not supplied.',
)
InvalidTimeStampExpired = _error(
    "InvalidTimeStamp.Expired", 400, "Specified time stamp or date value is expired."
)
Throttling = _error("Throttling", 400, "Request was denied due to request throttling.")
SignatureNonceUsed = _error("SignatureNonceUsed", 400, "Specified signature nonce was used already.")
InvalidAccessKeyIdNotFound = _error(
    "InvalidAccessKeyId.NotFound", 404, "The AccessKey ID provided does not exist in our records."
)
ForbiddenAccessKey = _error("Forbidden.AccessKey", 403, "This AccessKey is not enabled.")
ForbiddenNoPermission = _error("Forbidden.NoPermission", 403, "This operation is forbidden by permission system.")
UnsupportedHTTPMethod = _error("UnsupportedHTTPMethod", 403, "This http method is not supported.")
InvalidAction = _error("InvalidAction.NotFound", 404, "Specified api is not found, please check your url and method.")
ForbiddenKmsServiceNotEnabled = _error(
    "Forbidden.KmsServiceNotEnabled",
    403,
    "Kms service is not Enabled for current user. Please get access permission first.",
)
ForbiddenOpened = _error("Forbidden.Opened", 400, "Your kms service has been opened.")

# --- resources ---
KeyNotFound = _error("Forbidden.KeyNotFound", 404, "The specified Key is not found.")
KeyVersionNotFound = _error("Forbidden.KeyVersionNotFound", 404, "The specified Key version is not found.")
AliasNotFound = _error("Forbidden.AliasNotFound", 404, "The specified Alias is not found.")
ResourceNotFound = _error("Forbidden.ResourceNotFound", 404, "The resource is not found.")
LimitExceeded = _error(
    "Rejected.LimitExceeded", 400, "The request was rejected because user create resource limit was exceeded."
)
AliasAlreadyExists = _error("AliasAlreadyExists", 400, "AliasName Already Exists.")
ResourceExist = _error("Rejected.ResourceExist", 409, "The resource already exists.")
ResourceInDeleteWindow = _error("Rejected.ResourceInDeleteWindow", 409, "The secret is planned to be deleted.")
ResourceInUse = _error("Rejected.ResourceInUse", 409, "The secret is not scheduled for deletion.")
InvalidRequest = _error("Rejected.InvalidRequest", 400, "param mismatch")
UnsupportedOperation = _error("UnsupportedOperation", 400, "This action is not supported.")
RejectedUnsupportedOperation = _error("Rejected.UnsupportedOperation", 400, "Unsupported operation.")
InvalidKeyMaterial = _error("InvalidKeyMaterial", 400, "key material is invalid.")
InvalidImportToken = _error("InvalidImportToken", 400, "import token is invalid.")
ExpiredImportToken = _error("ExpiredImportToken", 400, "import token is expired.")
UnsupportedAlias = _error("Unsupported.Alias", 400, "Alias is not valid for this api.")
UnsupportedOrigin = _error("Unsupported.Origin", 400, "This key origin is not valid for this api.")
ForbiddenDKMSInstanceNotFound = _error(
    "Forbidden.DKMSInstanceNotFound", 403, "The specified DKMS instance is not found."
)
UnsupportedProtectionLevel = _error(
    "Unsupported.ProtectionLevel", 400, "This protection level is not valid for this region"
)

# --- key state (HTTP 409) ---
StateModifiedFailed = _error("Rejected.StateModifiedFailed", 409, "Keystate modified failed.")
RejectedDisabled = _error("Rejected.Disabled", 409, "The request was rejected because the key state is Disabled.")
RejectedPendingDeletion = _error(
    "Rejected.PendingDeletion", 409, "The request was rejected because the key state is PendingDeletion."
)
RejectedPendingImport = _error(
    "Rejected.PendingImport", 409, "The request was rejected because the key state is PendingImport."
)

# --- DryRun outcomes (KMS always fails a DryRun call) ---
# Status codes of the three outcomes are not documented; 400/400/403 follow the error families.
DryRunOperationError = _error(
    "DryRunOperationError", 400, "The request would have succeeded, but the DryRun flag is set."
)
ValidationError = _error("ValidationError", 400, "The request parameters are not valid.")
AccessDeniedError = _error("AccessDeniedError", 403, "You are not authorized to perform this operation.")

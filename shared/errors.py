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


# --- request, signature and identity (gateway level) ---
class InternalFailure(KmsError):
    code, status = "InternalFailure", 500
    message = "Internal Failure."


class ServiceUnavailableTemporary(KmsError):
    code, status = "ServiceUnavailableTemporary", 503
    message = "Service Unavailable Temporary."


class ParseRequestParameterException(KmsError):
    code, status = "ParseRequestParameterException", 400
    message = "Server parse parameters exception. Please check your input params."


class MissingParameter(KmsError):
    code, status = "MissingParameter", 400
    message = 'The parameter "{name}" is needed but not provided.'


class InvalidParameter(KmsError):
    code, status = "InvalidParameter", 400
    message = 'The specified parameter "{name}" is not valid.'


class IncompleteSignature(KmsError):
    code, status = "IncompleteSignature", 400
    message = "The request signature does not conform to Alibaba Cloud standards."


class SignatureDoesNotMatch(KmsError):
    # The classic Python SDK splits this message on ':' and compares the tail with its own
    # string-to-sign, so the wording and the colon are part of the contract.
    code, status = "SignatureDoesNotMatch", 400
    message = "Specified signature is not matched with our calculation. server string to sign is:{sts}"


class IllegalTimestamp(KmsError):
    code, status = "IllegalTimestamp", 400
    message = 'The input parameter "Timestamp" that is required for processing this request is not supplied.'


class InvalidTimeStampExpired(KmsError):
    code, status = "InvalidTimeStamp.Expired", 400
    message = "Specified time stamp or date value is expired."


class Throttling(KmsError):
    code, status = "Throttling", 400
    message = "Request was denied due to request throttling."


class SignatureNonceUsed(KmsError):
    code, status = "SignatureNonceUsed", 400
    message = "Specified signature nonce was used already."


class InvalidAccessKeyIdNotFound(KmsError):
    code, status = "InvalidAccessKeyId.NotFound", 404
    message = "The AccessKey ID provided does not exist in our records."


class ForbiddenAccessKey(KmsError):
    code, status = "Forbidden.AccessKey", 403
    message = "This AccessKey is not enabled."


class ForbiddenNoPermission(KmsError):
    code, status = "Forbidden.NoPermission", 403
    message = "This operation is forbidden by permission system."


class UnsupportedHTTPMethod(KmsError):
    code, status = "UnsupportedHTTPMethod", 403
    message = "This http method is not supported."


class InvalidAction(KmsError):
    code, status = "InvalidAction.NotFound", 404
    message = "Specified api is not found, please check your url and method."


class ForbiddenKmsServiceNotEnabled(KmsError):
    code, status = "Forbidden.KmsServiceNotEnabled", 403
    message = "Kms service is not Enabled for current user. Please get access permission first."


class ForbiddenOpened(KmsError):
    code, status = "Forbidden.Opened", 400
    message = "Your kms service has been opened."


# --- resources ---
class KeyNotFound(KmsError):
    code, status = "Forbidden.KeyNotFound", 404
    message = "The specified Key is not found."


class KeyVersionNotFound(KmsError):
    code, status = "Forbidden.KeyVersionNotFound", 404
    message = "The specified Key version is not found."


class AliasNotFound(KmsError):
    code, status = "Forbidden.AliasNotFound", 404
    message = "The specified Alias is not found."


class ResourceNotFound(KmsError):
    code, status = "Forbidden.ResourceNotFound", 404
    message = "The resource is not found."


class LimitExceeded(KmsError):
    code, status = "Rejected.LimitExceeded", 400
    message = "The request was rejected because user create resource limit was exceeded."


class AliasAlreadyExists(KmsError):
    code, status = "AliasAlreadyExists", 400
    message = "AliasName Already Exists."


class ResourceExist(KmsError):
    code, status = "Rejected.ResourceExist", 409
    message = "The resource already exists."


class ResourceInDeleteWindow(KmsError):
    code, status = "Rejected.ResourceInDeleteWindow", 409
    message = "The secret is planned to be deleted."


class ResourceInUse(KmsError):
    code, status = "Rejected.ResourceInUse", 409
    message = "The secret is not scheduled for deletion."


class InvalidRequest(KmsError):
    code, status = "Rejected.InvalidRequest", 400
    message = "param mismatch"


class UnsupportedOperation(KmsError):
    code, status = "UnsupportedOperation", 400
    message = "This action is not supported."


class RejectedUnsupportedOperation(KmsError):
    code, status = "Rejected.UnsupportedOperation", 400
    message = "Unsupported operation."


class InvalidKeyMaterial(KmsError):
    code, status = "InvalidKeyMaterial", 400
    message = "key material is invalid."


class InvalidImportToken(KmsError):
    code, status = "InvalidImportToken", 400
    message = "import token is invalid."


class ExpiredImportToken(KmsError):
    code, status = "ExpiredImportToken", 400
    message = "import token is expired."


class UnsupportedAlias(KmsError):
    code, status = "Unsupported.Alias", 400
    message = "Alias is not valid for this api."


class UnsupportedOrigin(KmsError):
    code, status = "Unsupported.Origin", 400
    message = "This key origin is not valid for this api."


class ForbiddenDKMSInstanceNotFound(KmsError):
    code, status = "Forbidden.DKMSInstanceNotFound", 403
    message = "The specified DKMS instance is not found."


class UnsupportedProtectionLevel(KmsError):
    code, status = "Unsupported.ProtectionLevel", 400
    message = "This protection level is not valid for this region"


# --- key state (HTTP 409) ---
class StateModifiedFailed(KmsError):
    code, status = "Rejected.StateModifiedFailed", 409
    message = "Keystate modified failed."


class RejectedDisabled(KmsError):
    code, status = "Rejected.Disabled", 409
    message = "The request was rejected because the key state is Disabled."


class RejectedPendingDeletion(KmsError):
    code, status = "Rejected.PendingDeletion", 409
    message = "The request was rejected because the key state is PendingDeletion."


class RejectedPendingImport(KmsError):
    code, status = "Rejected.PendingImport", 409
    message = "The request was rejected because the key state is PendingImport."


# --- DryRun outcomes (KMS always fails a DryRun call) ---
# Status codes of the three outcomes are not documented; 400/400/403 follow the error families.
class DryRunOperationError(KmsError):
    code, status = "DryRunOperationError", 400
    message = "The request would have succeeded, but the DryRun flag is set."


class ValidationError(KmsError):
    code, status = "ValidationError", 400
    message = "The request parameters are not valid."


class AccessDeniedError(KmsError):
    code, status = "AccessDeniedError", 403
    message = "You are not authorized to perform this operation."

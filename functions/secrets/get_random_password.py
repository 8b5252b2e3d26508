"""GetRandomPassword: a random password drawn with `secrets` (the OS CSPRNG), uniformly.

PasswordLength 8-128 (default 32). Character types: lower case, upper case, digits, and the
punctuation ``!"#$%&'()*+,-./:;<=>?@[\\]^_{|}~`` (the documented valid set). ExcludeCharacters
removes characters; Exclude* removes a whole type. RequireEachIncludedType (default false, as the
reference text says) is met by drawing whole passwords until one has every remaining type, which
keeps the result uniform over the passwords that qualify.
Errors: InvalidParameter (length, nothing left to draw from, more types than characters).
"""

from __future__ import annotations

import secrets as csprng
import string
from typing import Annotated

from pydantic import Field

from alikms.shared import errors
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Flag, Response
from alikms.shared.runtime import api_handler

PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_{|}~"


class GetRandomPasswordRequest(ApiModel):
    password_length: Annotated[int, Field(ge=8, le=128)] = 32
    exclude_characters: Annotated[str, Field(max_length=256)] = ""  # from a set of 94 characters
    exclude_lowercase: Flag = False
    exclude_uppercase: Flag = False
    exclude_numbers: Flag = False
    exclude_punctuation: Flag = False
    require_each_included_type: Flag = False


class GetRandomPasswordResponse(Response):
    random_password: str


def get_random_password(req: GetRandomPasswordRequest, ctx: Context) -> GetRandomPasswordResponse:
    types = [chars for chars, excluded in ((string.ascii_lowercase, req.exclude_lowercase),
                                           (string.ascii_uppercase, req.exclude_uppercase),
                                           (string.digits, req.exclude_numbers),
                                           (PUNCTUATION, req.exclude_punctuation)) if not excluded]
    types = [t for t in ("".join(c for c in chars if c not in req.exclude_characters) for chars in types) if t]
    pool = "".join(types)
    if not pool or (req.require_each_included_type and len(types) > req.password_length):
        raise errors.InvalidParameter(name="PasswordLength")
    for _ in range(10000):
        password = "".join(csprng.choice(pool) for _ in range(req.password_length))
        if not req.require_each_included_type or all(any(c in t for c in password) for t in types):
            return GetRandomPasswordResponse(random_password=password)
    raise errors.InternalFailure()  # unreachable in practice: 10,000 draws all missing a type


handler = api_handler(__name__, GetRandomPasswordRequest, get_random_password)

"""Operator passwords: argon2id hashes, the password policy, and what a stored hash may look like.

Parameters: argon2id with 64 MiB, 2 passes, 1 lane, a 16-byte salt and a 32-byte tag, above
OWASP's minimum (19 MiB, 2 passes, 1 lane). One verify took about 165 ms on the desk's reference
machine (2 cores; ``python -m tests.bench.login``): slow enough that a stolen database costs an
attacker dearly, fast enough that a sign-in does not feel slow. A hash made with older (weaker)
parameters still verifies, and is replaced by one with these at the next successful sign-in.

A stored hash is data read from the database, so it may have been tampered with: anything that is
not an argon2id hash, or whose parameters would make one verify take minutes or gigabytes, is
``StoredHashInvalid``, never a crash and never a hang.

Passwords are normalised to NFKC before hashing (NIST SP 800-63B): the same password typed on
keyboards that compose accents differently is the same password.
"""

from __future__ import annotations

import base64
import os
import unicodedata

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

MEMORY_COST_KIB = 64 * 1024
TIME_COST = 2
PARALLELISM = 1
SALT_BYTES = 16
HASH_BYTES = 32

MIN_LENGTH = 12
MAX_LENGTH = 1024

# A stored hash asking for more than this is not one Bulwark made: verifying it would take the
# desk's memory or minutes of CPU, so it is refused as tampered.
_MAX_STORED_MEMORY_KIB = 1024 * 1024
_MAX_STORED_TIME_COST = 64
_MAX_STORED_PARALLELISM = 16
_PREFIX = "$argon2id$"


class StoredHashInvalid(Exception):
    """The stored hash is not an argon2id hash Bulwark could have made (damaged or tampered in the database).

    The message says so without quoting the hash.
    """


def password_hasher(
    *, memory_cost_kib: int = MEMORY_COST_KIB, time_cost: int = TIME_COST, parallelism: int = PARALLELISM,
) -> PasswordHasher:
    """An argon2id hasher; the defaults are the desk's parameters (tests pass cheaper ones to run fast)."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism,
                          hash_len=HASH_BYTES, salt_len=SALT_BYTES, type=Type.ID)


DEFAULT_HASHER = password_hasher()


def _encoded(password: str) -> bytes:
    # surrogatepass: a lone surrogate (pasted from a broken clipboard) must not raise here; the
    # policy refuses it in a new password, so such input can only ever fail to match.
    return unicodedata.normalize("NFKC", password).encode("utf-8", "surrogatepass")


def hash_password(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """The argon2id hash of ``password`` (encoded string with its own salt and parameters)."""
    return hasher.hash(_encoded(password))


def unmatchable_hash(hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """A well-formed argon2id hash with ``hasher``'s parameters and a random salt and tag, made without running argon2.

    Verifying a password against it costs exactly what verifying against an account's hash costs (the
    cost is in hashing the password with the salt, not in the tag compared at the end), and nothing
    matches it: the tag is random, so a match would need a 256-bit collision. It stands in for the
    hash of a name no account has, and costs nothing to build, so it is ready before the first sign-in.
    """
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii").rstrip("=")

    return (f"$argon2id$v={ARGON2_VERSION}$m={hasher.memory_cost},t={hasher.time_cost},p={hasher.parallelism}"
            f"${b64(os.urandom(hasher.salt_len))}${b64(os.urandom(hasher.hash_len))}")


def check_stored_hash(stored: str) -> None:
    """Raise ``StoredHashInvalid`` unless ``stored`` is an argon2id hash with sane parameters."""
    if not isinstance(stored, str) or not stored.startswith(_PREFIX):
        raise StoredHashInvalid("the stored password hash is not an argon2id hash")
    try:
        parameters = extract_parameters(stored)
    except (InvalidHashError, ValueError) as exc:
        raise StoredHashInvalid("the stored password hash is malformed") from exc
    if (parameters.memory_cost > _MAX_STORED_MEMORY_KIB or parameters.time_cost > _MAX_STORED_TIME_COST
            or parameters.parallelism > _MAX_STORED_PARALLELISM):
        raise StoredHashInvalid("the stored password hash asks for parameters Bulwark never uses")


def verify_password(stored: str, password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    """Whether ``password`` matches ``stored``; ``StoredHashInvalid`` when ``stored`` cannot be checked."""
    check_stored_hash(stored)
    try:
        return hasher.verify(stored, _encoded(password))
    except VerifyMismatchError:
        return False
    except InvalidHashError as exc:
        raise StoredHashInvalid("the stored password hash is malformed") from exc
    except VerificationError as exc:
        # Decoding or computing failed on a hash that parsed: damaged (e.g. a salt or tag of the
        # wrong length), not a wrong password.
        raise StoredHashInvalid("the stored password hash cannot be verified") from exc


def needs_rehash(stored: str, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    """Whether ``stored`` was made with other parameters than ``hasher``'s (rehash after a successful sign-in)."""
    return hasher.check_needs_rehash(stored)


def password_problems(password: str, name: str) -> list[str]:
    """What is wrong with ``password`` as the new password of operator ``name``; empty when it is acceptable.

    Any Unicode is allowed (spaces too, anywhere); control characters are not, because they cannot
    be typed the same way twice and some terminals act on them.
    """
    if not password:
        return ["enter a password"]
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters (this one has {len(password)})")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters (this one has {len(password)})")
    categories = {unicodedata.category(ch) for ch in password}
    if "Cc" in categories:
        problems.append("no control characters (tab, newline, escape...)")
    if "Cs" in categories:
        problems.append("no unpaired surrogate characters (the text is damaged; type it again)")
    if not password.strip():
        problems.append("not only spaces")
    if name and password.strip().casefold() == name.strip().casefold():
        problems.append("not the operator's name")
    return problems

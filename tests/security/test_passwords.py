"""Password hashing (argon2id at or above OWASP's parameters), tampered hashes, rehash, and the policy."""

from __future__ import annotations

import base64
import time

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from app.security.passwords import (
    DEFAULT_HASHER,
    MAX_LENGTH,
    MIN_LENGTH,
    StoredHashInvalid,
    hash_password,
    needs_rehash,
    password_hasher,
    password_problems,
    unmatchable_hash,
    verify_password,
)

from .conftest import FAST_HASHER

GOOD = "correct horse battery"


def test_the_desks_hashes_are_argon2id_at_or_above_owasp() -> None:
    stored = hash_password(GOOD)
    assert stored.startswith("$argon2id$v=19$")
    parameters = extract_parameters(stored)
    assert parameters.type is Type.ID
    # OWASP Password Storage Cheat Sheet: argon2id, m >= 19 MiB, t >= 2, p = 1.
    assert parameters.memory_cost >= 19 * 1024 and parameters.time_cost >= 2 and parameters.parallelism == 1
    assert parameters.salt_len >= 16 and parameters.hash_len >= 32
    # Each hash has its own salt.
    assert hash_password(GOOD) != stored
    assert verify_password(stored, GOOD) is True
    assert verify_password(stored, GOOD + " ") is False


def test_one_verify_with_the_desks_parameters_is_deliberately_slow() -> None:
    stored = hash_password(GOOD)
    started = time.perf_counter()
    verify_password(stored, GOOD)
    # The floor only: a loaded machine may take longer (the bench reports the real figure).
    assert time.perf_counter() - started >= 0.02


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "'; DROP TABLE operators;--",
        "$2b$12$C6UzMDM.H6dfI/f/IKcEeO5Y7gzVv1aJx2C4cM6N0aS5F8lRnK2h.",  # bcrypt
        "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$" + "A" * 43,  # argon2i, not id
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ",  # truncated: no tag
        "$argon2id$v=19$m=65536,t=2,p=1$!!!!$????",
        "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$" + "A" * 43,  # 4 GiB: a hang, not a hash
        "$argon2id$v=19$m=65536,t=100000,p=1$c29tZXNhbHRzb21lc2FsdA$" + "A" * 43,
        "$argon2id$v=19$m=65536,t=2,p=255$c29tZXNhbHRzb21lc2FsdA$" + "A" * 43,
    ],
)
def test_a_stored_hash_that_is_not_a_sane_argon2id_hash_is_refused_not_a_crash(stored: str) -> None:
    with pytest.raises(StoredHashInvalid) as raised:
        verify_password(stored, GOOD, FAST_HASHER)
    # The message names the problem, never the hash.
    assert "hash" in str(raised.value) and (not stored or stored not in str(raised.value))


def test_a_hash_whose_tag_was_edited_does_not_verify() -> None:
    stored = hash_password(GOOD, FAST_HASHER)
    head, tag = stored.rsplit("$", 1)
    flipped = base64.b64encode(bytes(b ^ 1 for b in base64.b64decode(tag + "=="))).decode().rstrip("=")
    assert verify_password(f"{head}${flipped}", GOOD, FAST_HASHER) is False


def test_a_hash_made_with_weaker_parameters_still_verifies_and_needs_a_rehash() -> None:
    weak = password_hasher(memory_cost_kib=8, time_cost=1)
    stored = hash_password(GOOD, weak)
    assert verify_password(stored, GOOD, FAST_HASHER) is True
    assert needs_rehash(stored, FAST_HASHER) is True
    assert needs_rehash(hash_password(GOOD, FAST_HASHER), FAST_HASHER) is False
    assert needs_rehash(hash_password(GOOD, FAST_HASHER)) is True  # the desk's parameters are stronger


def test_the_same_password_composed_differently_is_the_same_password() -> None:
    composed, decomposed = "caf\u00e9 au lait 2026", "cafe\u0301 au lait 2026"
    assert verify_password(hash_password(composed, FAST_HASHER), decomposed, FAST_HASHER) is True


def test_unicode_and_odd_input_verifies_without_raising() -> None:
    stored = hash_password("पासवर्ड सुरक्षित है 🔒", FAST_HASHER)
    assert verify_password(stored, "पासवर्ड सुरक्षित है 🔒", FAST_HASHER) is True
    for odd in ("", "\ud800 lone surrogate", "\x00\x1b[2J", "x" * 10_000, "'; DROP TABLE operators;--"):
        assert verify_password(stored, odd, FAST_HASHER) is False


def test_the_default_hasher_is_the_one_hash_password_uses() -> None:
    assert isinstance(DEFAULT_HASHER, PasswordHasher)
    assert not needs_rehash(hash_password(GOOD), DEFAULT_HASHER)


@pytest.mark.parametrize(
    "password, problem",
    [
        ("", "enter a password"),
        ("short", f"at least {MIN_LENGTH} characters (this one has 5)"),
        ("x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH} characters"),
        ("x" * 10_240, f"at most {MAX_LENGTH} characters (this one has 10240)"),
        ("tab\tinside password", "no control characters"),
        ("newline\ninside password", "no control characters"),
        ("escape\x1b[2J password", "no control characters"),
        ("nul\x00inside password", "no control characters"),
        ("\ud800 damaged paste here", "no unpaired surrogate characters"),
        (" " * 20, "not only spaces"),
        ("Operator.Name", "not the operator's name"),
    ],
)
def test_the_policy_refuses(password: str, problem: str) -> None:
    problems = password_problems(password, "operator.name")
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "password",
    ["correct horse battery", "x" * MAX_LENGTH, "पासवर्ड सुरक्षित है", "mot de passe été", "  spaces around  ",
     "'; DROP TABLE operators;--", "🔒🔒🔒🔒🔒🔒🔒🔒🔒🔒🔒🔒"],
)
def test_the_policy_accepts(password: str) -> None:
    assert password_problems(password, "asha") == []


def test_the_unmatchable_hash_has_the_hashers_parameters_and_matches_nothing() -> None:
    for hasher in (DEFAULT_HASHER, FAST_HASHER):
        dummy = unmatchable_hash(hasher)
        real = hash_password(GOOD, hasher)
        # The same parameters as a real hash, so a verify against it costs what a real one costs.
        assert dummy.rsplit("$", 2)[0] == real.rsplit("$", 2)[0]
        assert extract_parameters(dummy) == extract_parameters(real)
        assert not needs_rehash(dummy, hasher)
    dummy = unmatchable_hash(FAST_HASHER)
    assert dummy != unmatchable_hash(FAST_HASHER)  # a fresh salt and tag each time
    for password in ("", GOOD, "bulwark: no such operator", "x" * MAX_LENGTH):
        assert verify_password(dummy, password, FAST_HASHER) is False

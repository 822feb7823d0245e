"""Sub-accounts: credentials (scrypt-hashed passwords, API keys, tokens) and credits."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import phonenumbers

from gateway.numbers import sims_dial_code
from gateway.store import Store

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Return a self-describing scrypt hash of `password`."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """Check `password` against a hash from hash_password (constant-time compare)."""
    try:
        scheme, n, r, p, salt_hex, digest_hex = encoded.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(digest.hex(), digest_hex)


def secret_digest(secret: str) -> str:
    """How API keys and tokens are stored: random 160-bit secrets need no slow hash, only one
    that a stolen database cannot turn back into a working key."""
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


def is_digest(stored: str) -> bool:
    """Whether a stored key is a digest (rows from before keys were hashed hold them in clear)."""
    return stored.startswith("sha256$")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What `smsgw accounts create` prints once: the secrets are not stored in clear."""

    account_id: int
    sub_account: str
    password: str
    api_key: str
    email: str
    token: str
    unlimited: bool = False
    credits: int = 0
    default_dial_code: str = ""


def box_dial_code(store: Store, account_id: int | None = None) -> str:
    """The country calling code of the box's SIMs (those `account_id` may use, if given), by
    their numbers or IMSIs; '' when no SIM tells its country."""
    sims = store.account_sim_numbers(account_id) if account_id is not None else store.list_sims()
    return sims_dial_code((s["msisdn"], s["imsi"]) for s in sims)


def check_dial_code(code: str) -> str:
    """A country calling code as stored (digits, no '+'); ValueError if no country has it."""
    digits = code.strip().removeprefix("+")
    if not (digits.isdigit() and len(digits) <= 3) or (
        phonenumbers.region_code_for_country_code(int(digits)) == phonenumbers.UNKNOWN_REGION
    ):
        raise ValueError(f"{code!r} is not a country calling code (such as 44 or 234)")
    return digits


def create_account(
    store: Store,
    sub_account: str,
    *,
    now: datetime,
    email: str = "",
    credits: int | None = None,
    unlimited: bool = False,
    default_dial_code: str | None = None,
    timezone: str = "UTC",
) -> Credentials:
    """Create a sub-account with fresh random credentials, ready to send: unlimited unless
    `credits` is given; numbers with a leading 0 take `default_dial_code`, else the country of
    the box's SIMs ('' when none is known yet: each send then uses what the SIMs tell)."""
    unlimited = unlimited or credits is None
    credits = credits or 0
    if default_dial_code is None:
        default_dial_code = box_dial_code(store)
    elif default_dial_code:
        default_dial_code = check_dial_code(default_dial_code)
    password = secrets.token_urlsafe(12)
    api_key = secrets.token_hex(20)
    token = secrets.token_hex(16)
    account_id = store.insert_account(
        {
            "sub_account": sub_account,
            "password_hash": hash_password(password),
            "api_key": secret_digest(api_key),
            "email": email,
            "token": secret_digest(token),
            "credits": credits,
            "unlimited": int(unlimited),
            "default_dial_code": default_dial_code,
            "timezone": timezone,
        },
        now=now,
    )
    return Credentials(
        account_id, sub_account, password, api_key, email, token, unlimited, credits,
        default_dial_code,
    )  # fmt: skip


def reset_credentials(store: Store, account_id: int) -> Credentials:
    """Issue a new password, API key and token for an account (the old ones stop working)."""
    account = store.account(account_id)
    if account is None:
        raise KeyError(f"no account {account_id}")
    password = secrets.token_urlsafe(12)
    api_key = secrets.token_hex(20)
    token = secrets.token_hex(16)
    store.set_credentials(
        account_id,
        password_hash=hash_password(password),
        api_key=secret_digest(api_key),
        token=secret_digest(token),
    )
    return Credentials(
        account_id, account["sub_account"], password, api_key, account["email"], token
    )

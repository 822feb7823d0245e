"""One-time passwords: random codes stored only as salted hashes, with a lifetime and attempts."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.store import Store, utc_iso

OTP_DIGITS = 6
OTP_LIFETIME = timedelta(minutes=10)
# Wrong guesses allowed against the live codes of one account (and number) before they die:
# with 6 digits, 5 guesses give an attacker a 1 in 200,000 chance.
MAX_ATTEMPTS = 5
OTP_TEXT = "Your verification code is {code}. It expires in {minutes} minutes."


class OtpState(StrEnum):
    """Life of one stored code."""

    PENDING = "pending"
    USED = "used"
    LOCKED = "locked"  # too many wrong guesses


class OtpOutcome(StrEnum):
    """What validation found."""

    VALID = "valid"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class IssuedOtp:
    """A fresh code: the clear code exists only here, to be sent; the store keeps its hash."""

    code: str
    number: str
    expires_at: datetime
    text: str


def hash_code(code: str, *, salt: bytes | None = None) -> str:
    """Salted HMAC-SHA256 of a code, self-describing."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hmac.new(salt, code.encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256${salt.hex()}${digest}"


def verify_code(code: str, encoded: str) -> bool:
    """Check a code against hash_code's output in constant time."""
    try:
        scheme, salt_hex, digest = encoded.split("$")
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != "hmac-sha256":
        return False
    candidate = hmac.new(salt, code.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(candidate, digest)


class OtpBook:
    """Issues and checks codes; sending the text is the caller's job (it costs credits)."""

    def __init__(self, store: Store, *, wall: Callable[[], datetime]) -> None:
        self.store = store
        self.wall = wall

    def new_code(self, number: str) -> IssuedOtp:
        """Draw a fresh code for `number` (not stored yet)."""
        code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
        minutes = int(OTP_LIFETIME.total_seconds() // 60)
        return IssuedOtp(
            code=code,
            number=number,
            expires_at=self.wall() + OTP_LIFETIME,
            text=OTP_TEXT.format(code=code, minutes=minutes),
        )

    def record(self, account_id: int, issued: IssuedOtp, *, message_id: int | None) -> int:
        """Store the hash of an issued code (after its text was accepted for sending)."""
        return self.store.insert_otp(
            {
                "account_id": account_id,
                "number": issued.number,
                "code_hash": hash_code(issued.code),
                "expires_at": utc_iso(issued.expires_at),
                "message_id": message_id,
            },
            now=self.wall(),
        )

    def validate(self, account_id: int, code: str, *, number: str | None = None) -> OtpOutcome:
        """Consume the live code equal to `code`; a miss counts against every live code."""
        live = self.store.live_otps(account_id, number, now=self.wall())
        code = code.strip()
        if code.isdigit() and len(code) == OTP_DIGITS:
            for otp in live:
                if verify_code(code, otp["code_hash"]):
                    self.store.update_otp(
                        otp["id"], state=OtpState.USED.value, attempts=otp["attempts"] + 1
                    )
                    return OtpOutcome.VALID
        for otp in live:
            attempts = otp["attempts"] + 1
            state = OtpState.LOCKED if attempts >= MAX_ATTEMPTS else OtpState.PENDING
            self.store.update_otp(otp["id"], state=state.value, attempts=attempts)
        return OtpOutcome.INVALID

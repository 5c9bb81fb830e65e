"""Mobile numbers: the one pattern, normalising and masking.

A customer's number is an 11-digit mainland mobile number (``1[3-9]`` and nine digits). Every
check of a number (the target-list audit, personal-data imports, the portal's trajectory search)
uses :data:`PATTERN`; every log line, alert and shop statement that must not show a full number
uses :func:`mask` or :func:`mask_numbers`.
"""

from __future__ import annotations

import re

PATTERN = r"^1[3-9]\d{9}$"            # also handed to Great Expectations, which runs it in the database
MSISDN = re.compile(PATTERN)
# a number inside free text (an exception message): optionally +86/86 before it, no digit around it
IN_TEXT = re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)")


def is_mobile(number: str | None) -> bool:
    """True for an 11-digit mainland mobile number."""
    return bool(number) and MSISDN.match(number) is not None


def normalise(addr: str | None) -> str:
    """11-digit mainland number from an SMPP address (``+86``/``86``/``0086`` prefixes dropped)."""
    digits = "".join(ch for ch in (addr or "") if ch.isdigit())
    for prefix in ("0086", "86"):
        if len(digits) == 11 + len(prefix) and digits.startswith(prefix):
            return digits[len(prefix):]
    return digits


def mask(msisdn: str | None) -> str:
    """138****1234, for logs, alerts and shop statements."""
    m = msisdn or ""
    return f"{m[:3]}****{m[-4:]}" if len(m) >= 8 else "****"


def mask_numbers(text: str) -> str:
    """Every mobile number in ``text`` masked as 138****1234."""
    return IN_TEXT.sub(lambda m: mask(m.group(0)[-11:]), text)

"""Symptom texts: validation (blank, too long, invalid UTF-8) and masking of obvious identifiers before storage.

Masking is deliberately conservative and pattern based: e-mail addresses become ``[EMAIL]``, dates ``[DATE]``,
phone numbers ``[PHONE]`` and ID-like numbers (six or more digits, or digit groups such as ``123-45-6789``, or
letters+digits codes after ``MRN``/``ID``/``No.``) ``[ID]``. Clinical numbers (``38.5``, ``120/80``, ``3 days``)
are kept. It is no substitute for a de-identification review of free text.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TEXT_CHARS", "mask_identifiers", "text_problem"]

MAX_TEXT_CHARS = 10_000  # longer symptom notes are rejected: they are almost always pasted documents

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DATE = re.compile(r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b")
_LABELLED_ID = re.compile(r"\b(?:MRN|ID|No\.?|NHS|SSN|patient\s+number)\s*[:#]?\s*[A-Za-z]*\d[\w-]*", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w.])")
_PHONE_MIN_DIGITS = 7  # fewer digits in a phone-like group are clinical numbers, not phone numbers
_ID_NUMBER = re.compile(r"\b\d{6,}\b|\b\d{2,4}(?:-\d{2,6}){1,3}\b")


def mask_identifiers(text: str) -> str:
    """Mask e-mails, dates, phone numbers and ID-like numbers in a symptom text.

    Args:
        text: The symptom text.

    Returns:
        The text with each identifier replaced by a bracketed tag; everything else unchanged.

    Examples:
        >>> mask_identifiers("call 555 123 4567 or mail jo@example.org; fever 38.5 for 3 days")
        'call [PHONE] or mail [EMAIL]; fever 38.5 for 3 days'
    """
    text = _EMAIL.sub("[EMAIL]", text)
    text = _DATE.sub("[DATE]", text)
    text = _LABELLED_ID.sub("[ID]", text)
    text = _PHONE.sub(lambda m: "[PHONE]" if sum(c.isdigit() for c in m.group()) >= _PHONE_MIN_DIGITS else m.group(), text)
    return _ID_NUMBER.sub("[ID]", text)


def text_problem(text: str | None) -> str | None:
    """Say why a symptom text cannot be stored, or ``None`` when it can.

    Checks: invalid UTF-8 (undecodable bytes survive decoding as lone surrogates), NUL / control characters only,
    and the :data:`MAX_TEXT_CHARS` limit. An empty or whitespace-only text is *absent*, not a problem.
    """
    if text is None:
        return None
    if any("\udc80" <= char <= "\udcff" for char in text):
        return "symptom text is not valid UTF-8; re-save the manifest as UTF-8"
    if len(text) > MAX_TEXT_CHARS:
        return f"symptom text has {len(text)} characters; the limit is {MAX_TEXT_CHARS} (shorten it to the symptoms)"
    if not any(char.isprintable() and not char.isspace() for char in text):
        return "symptom text holds only control characters; fill in the symptoms or leave the cell empty"
    return None

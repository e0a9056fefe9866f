"""Symptom texts: validation (blank, too long, invalid UTF-8) and masking of obvious identifiers before storage.

Masking is deliberately conservative and pattern based:

- the row's own identifiers (its ``patient_id`` and ``case_id``, given as ``known``) become ``[ID]`` wherever they
  appear as a whole token, in any case;
- e-mail addresses become ``[EMAIL]``;
- dates become ``[DATE]``: numeric (``2024-03-01``, ``3/1/24``) and written (``3 March 1961``, ``Jan 2, 1960``,
  ``March 1961``), with a ``DOB`` / ``date of birth`` / ``born`` prefix swallowed into the tag;
- phone numbers become ``[PHONE]``;
- ID-like numbers become ``[ID]``: six or more digits, digit groups such as ``123-45-6789``, and codes after
  ``MRN`` / ``ID`` / ``patient id`` / ``No.`` / ``NHS`` / ``SSN`` (``MRN-4242``, ``patient id P-0042``).

Clinical numbers (``38.5``, ``120/80``, ``3 days``) are kept. It is no substitute for a de-identification review of
free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MAX_TEXT_CHARS", "mask_identifiers", "text_problem"]

MAX_TEXT_CHARS = 10_000  # longer symptom notes are rejected: they are almost always pasted documents

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_WRITTEN_DATE = (rf"\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{2,4}}"  # 3 March 1961
                 rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}"  # Jan 2, 1960
                 rf"|{_MONTH}\s+(?:19|20)\d\d")  # March 1961
_NUMERIC_DATE = r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
_DATE = re.compile(rf"(?:\b(?:DOB|D\.O\.B\.?|date\s+of\s+birth|born(?:\s+on)?)\s*[:#-]?\s*)?"
                   rf"\b(?:{_WRITTEN_DATE}|{_NUMERIC_DATE})\b", re.IGNORECASE)
_LABELLED_ID = re.compile(r"\b(?:MRN|ID|No\.?|NHS|SSN|patient\s+(?:number|id|no\.?))\s*[:#-]?\s*[A-Za-z]*[-/]?\d[\w-]*",
                          re.IGNORECASE)
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w.])")
_PHONE_MIN_DIGITS = 7  # fewer digits in a phone-like group are clinical numbers, not phone numbers
_ID_NUMBER = re.compile(r"\b\d{6,}\b|\b\d{2,4}(?:-\d{2,6}){1,3}\b")


MIN_KNOWN_CHARS = 3  # shorter known identifiers ("7") are not masked: they would erase clinical numbers


def mask_identifiers(text: str, known: Iterable[str | None] = ()) -> str:
    """Mask the row's own identifiers, e-mails, dates, phone numbers and ID-like numbers in a symptom text.

    Args:
        text: The symptom text.
        known: Identifiers of this row (``patient_id``, ``case_id``) to mask wherever they appear as a token.

    Returns:
        The text with each identifier replaced by a bracketed tag; everything else unchanged.

    Examples:
        >>> mask_identifiers("call 555 123 4567 or mail jo@example.org; fever 38.5 for 3 days")
        'call [PHONE] or mail [EMAIL]; fever 38.5 for 3 days'
        >>> mask_identifiers("DOB: Jan 2, 1960, MRN-4242, seen for P-0042", known=["P-0042"])
        '[DATE], [ID], seen for [ID]'
    """
    for value in sorted({v.strip() for v in known if v and len(v.strip()) >= MIN_KNOWN_CHARS}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "[ID]", text, flags=re.IGNORECASE)
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

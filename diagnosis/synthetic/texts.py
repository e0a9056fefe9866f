"""Synthetic symptom texts: first-person complaints or terse clinical notes.

A text samples a few symptom groups (one synonym each) from its diagnosis, optionally a background phrase, a
negation, and an unrelated distractor complaint, and renders them through varied sentence templates in random
order. With probability ``confusion_rate`` the symptoms come mostly from another diagnosis, so text alone is
informative but imperfect.

Examples:
    >>> import numpy as np
    >>> text = generate_text("pneumonia", np.random.default_rng(0))
    >>> isinstance(text, str) and len(text) > 20
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diagnosis.synthetic.classes import DIAGNOSES, DISTRACTORS, SPECS

__all__ = ["generate_text"]

_DURATIONS = ("two days", "three days", "a week", "ten days", "two weeks", "a month", "several months")

_SEX_ABBREV = {"man": "M", "male": "M", "woman": "F", "female": "F", "patient": " y/o"}

_FIRST_PERSON = {
    "open": (
        "I've had {s} for {d}.",
        "Hi doctor, I've been dealing with {s} for {d}.",
        "It's been {d} since I first noticed {s}.",
        "I came in because of {s}.",
        "My main problem is {s}, which started {d} ago.",
    ),
    "symptom": (
        "I also have {s}.",
        "On top of that there's {s}.",
        "Lately I keep getting {s}.",
        "I've noticed {s} as well.",
        "There is also {s}.",
    ),
    "context": ("Some background: {h}.", "For context, {h}.", "Worth mentioning: {h}.", "I'm here for {h}."),
    "negation": ("No {n}.", "I don't have any {n}.", "There's no {n} as far as I know.", "I haven't noticed {n}."),
    "distractor": ("I also have {x}.", "Unrelated, but I've had {x}.", "Oh, and {x} too."),
}

_CLINICAL = {
    "open": (
        "{age}-year-old {sex} presenting with {s} for {d}.",
        "Pt is a {age} y/o {sex} with {s} x {d}.",
        "Chief complaint: {s}, onset {d} ago.",
        "{age}{sx} c/o {s} for {d}.",
    ),
    "symptom": ("Also reports {s}.", "Associated with {s}.", "Endorses {s}.", "Notes {s}."),
    "context": ("Hx: {h}.", "Context: {h}.", "Of note, {h}.", "Seen for {h}."),
    "negation": ("Denies {n}.", "No {n}.", "Negative for {n}."),
    "distractor": ("Incidentally mentions {x}.", "Also c/o {x}.", "Additionally reports {x}."),
}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """Return one element of ``options`` chosen uniformly."""
    return options[int(rng.integers(len(options)))]


def _symptom_phrases(rng: np.random.Generator, label: str, count: int) -> list[str]:
    """Pick ``count`` distinct symptom groups of ``label`` and one synonym from each."""
    groups = SPECS[label].symptoms
    chosen = rng.choice(len(groups), size=min(count, len(groups)), replace=False)
    return [_pick(rng, groups[int(i)]) for i in chosen]


def generate_text(label: str, rng: np.random.Generator, confusion_rate: float = 0.15) -> str:
    """Generate one symptom description for a case of diagnosis ``label``.

    Args:
        label: One of :data:`~diagnosis.synthetic.classes.DIAGNOSES`.
        rng: Random generator; the text is a deterministic function of its state.
        confusion_rate: Probability that the symptoms are drawn mostly from another diagnosis.

    Returns:
        A few English sentences (commas and periods included), either first-person or clinical-note style.

    Raises:
        ValueError: If ``label`` is unknown or ``confusion_rate`` is outside [0, 1].
    """
    if label not in SPECS:
        raise ValueError(f"Unknown diagnosis {label!r}; use one of {DIAGNOSES}.")
    if not 0.0 <= confusion_rate <= 1.0:
        raise ValueError(f"confusion_rate must be in [0, 1], got {confusion_rate}.")
    source = label
    if rng.uniform() < confusion_rate:
        others = [name for name in DIAGNOSES if name != label]
        source = _pick(rng, others)
    spec = SPECS[source]
    symptoms = _symptom_phrases(rng, source, int(rng.integers(1, 4)))
    if source != label and rng.uniform() < 0.35:  # "mostly" from the wrong pool: keep one true symptom
        symptoms.append(_symptom_phrases(rng, label, 1)[0])
    style = _FIRST_PERSON if rng.uniform() < 0.5 else _CLINICAL
    age = int(rng.integers(22, 86))
    sex = _pick(rng, ("man", "woman", "male", "female", "patient"))
    opener_symptoms = symptoms[:1] if source != "normal" or rng.uniform() < 0.5 else []
    sentences: list[str] = []
    if rng.uniform() < (0.85 if source == "normal" else 0.5):
        sentences.append(_pick(rng, style["context"]).format(h=_pick(rng, spec.history)))
    for phrase in symptoms[len(opener_symptoms) :]:
        sentences.append(_pick(rng, style["symptom"]).format(s=phrase))
    if rng.uniform() < 0.5:
        negated = rng.choice(len(spec.negations), size=int(rng.integers(1, 3)), replace=False)
        joined = " or ".join(spec.negations[int(i)] for i in negated)
        sentences.append(_pick(rng, style["negation"]).format(n=joined))
    if rng.uniform() < 0.35:
        sentences.append(_pick(rng, style["distractor"]).format(x=_pick(rng, DISTRACTORS)))
    order = rng.permutation(len(sentences))
    body = [sentences[int(i)] for i in order]
    if opener_symptoms:
        opener = _pick(rng, style["open"]).format(
            s=opener_symptoms[0], d=_pick(rng, _DURATIONS), age=age, sex=sex, sx=_SEX_ABBREV[sex]
        )
        body.insert(0, opener)
    if not body:  # a normal case that drew nothing: fall back to its context
        body.append(_pick(rng, style["context"]).format(h=_pick(rng, spec.history)))
    text = " ".join(body)
    return text[0].upper() + text[1:]

"""The synthetic diagnoses and what characterises each of them.

Each diagnosis carries the symptom vocabulary its texts are built from (groups of synonymous noun phrases) and a
short description of its imaging finding; the image renderers in :mod:`diagnosis.synthetic.images` dispatch on the
label name.

Examples:
    >>> from diagnosis.synthetic.classes import DIAGNOSES, RARE_DIAGNOSIS, SPECS
    >>> DIAGNOSES[0], RARE_DIAGNOSIS
    ('normal', 'pneumothorax')
    >>> SPECS["pneumonia"].finding
    'patchy diffuse opacity in one lung region'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DIAGNOSES",
    "DISTRACTORS",
    "RARE_DIAGNOSIS",
    "SPECS",
    "DiagnosisSpec",
    "Synonyms",
]

Synonyms = tuple[str, ...]
"""Interchangeable noun phrases for one symptom or history item (the first is the canonical one)."""


@dataclass(frozen=True)
class DiagnosisSpec:
    """Text and image characteristics of one diagnosis.

    Attributes:
        name: Label name, as written in the manifest's ``label`` column.
        finding: One-line description of the imaging finding the renderer draws.
        symptoms: Symptom groups typical of the diagnosis; a text draws one phrase from a few groups.
        history: Background / context phrases (history, circumstances) typical of the diagnosis.
        negations: Symptoms a patient with this diagnosis typically *denies* (canonical phrases).
    """

    name: str
    finding: str
    symptoms: tuple[Synonyms, ...]
    history: tuple[str, ...]
    negations: tuple[str, ...]


# Symptom groups shared by several diagnoses, so that no single word identifies a class.
_BREATHLESS: Synonyms = ("shortness of breath", "breathlessness", "dyspnea", "difficulty catching my breath")
_COUGH: Synonyms = ("a cough", "a persistent cough", "a nagging cough", "coughing")
_CHEST_PAIN: Synonyms = ("chest pain", "pain in the chest", "chest discomfort")
_FATIGUE: Synonyms = ("fatigue", "tiredness", "low energy", "feeling worn out")

_SPECS: tuple[DiagnosisSpec, ...] = (
    DiagnosisSpec(
        name="normal",
        finding="none",
        symptoms=(
            ("a mild sore throat", "a scratchy throat"),
            ("a slight runny nose", "some nasal congestion", "a blocked nose"),
            ("mild seasonal allergies", "hay fever symptoms", "itchy eyes in spring"),
            ("occasional tiredness after long shifts", "some tiredness lately"),
            ("a tickly cough that is already improving", "a minor cough after a cold"),
        ),
        history=(
            "a routine check-up",
            "an annual physical",
            "a pre-employment medical",
            "an occupational screening visit",
            "a follow-up visit with no new complaints",
            "generally feeling well",
            "a sports medical clearance",
        ),
        negations=("fever", "chest pain", "shortness of breath", "weight loss", "leg swelling"),
    ),
    DiagnosisSpec(
        name="pneumonia",
        finding="patchy diffuse opacity in one lung region",
        symptoms=(
            ("fever", "a high temperature", "fevers", "pyrexia"),
            ("a productive cough", "a cough bringing up green phlegm", "yellow sputum", "a wet cough"),
            ("chills", "shaking chills", "rigors", "night sweats"),
            ("sharp pain when breathing in", "pleuritic chest pain", "pain on deep inspiration"),
            _BREATHLESS,
            _FATIGUE,
        ),
        history=(
            "a cold that got worse over the last week",
            "a recent flu-like illness",
            "a sick contact at home",
            "poor appetite since the symptoms started",
        ),
        negations=("leg swelling", "palpitations", "weight loss", "blood in the sputum"),
    ),
    DiagnosisSpec(
        name="pleural_effusion",
        finding="bright fluid level with a horizontal meniscus at a lung base",
        symptoms=(
            ("breathlessness when lying flat", "orthopnea", "needing extra pillows to breathe at night"),
            ("a heavy feeling on one side of the chest", "chest tightness", "a dull ache in the side"),
            ("a dry cough", "a nonproductive cough"),
            ("reduced exercise tolerance", "getting winded on the stairs", "dyspnea on exertion"),
            _BREATHLESS,
            _CHEST_PAIN,
        ),
        history=(
            "a history of heart failure",
            "cancer treatment last year",
            "known kidney disease",
            "liver problems",
            "breathing that has slowly worsened over weeks",
        ),
        negations=("fever", "blood in the sputum", "palpitations"),
    ),
    DiagnosisSpec(
        name="lung_nodule",
        finding="small bright round blob",
        symptoms=(
            ("a persistent dry cough", "a cough that will not go away", "a chronic cough"),
            ("unintentional weight loss", "losing weight without trying", "a drop in appetite and weight"),
            ("coughing up a little blood", "hemoptysis", "blood-streaked sputum"),
            ("hoarseness", "a hoarse voice"),
            _COUGH,
            _FATIGUE,
        ),
        history=(
            "a long smoking history",
            "a spot seen on an earlier scan",
            "an incidental finding on a previous scan",
            "referral for follow-up of a shadow on the lung",
            "asbestos exposure at work years ago",
            "thirty pack-years of smoking",
        ),
        negations=("fever", "chest pain", "shortness of breath", "leg swelling"),
    ),
    DiagnosisSpec(
        name="cardiomegaly",
        finding="enlarged heart shadow",
        symptoms=(
            ("swollen ankles", "leg swelling", "peripheral edema", "puffy feet by the evening"),
            ("palpitations", "a racing heart", "an irregular heartbeat", "a pounding heartbeat"),
            ("waking up at night gasping for air", "paroxysmal nocturnal dyspnea"),
            ("weight gain from fluid", "rapid weight gain", "a tight waistband from bloating"),
            ("dyspnea on exertion", "getting breathless walking uphill", "reduced exercise tolerance"),
            _FATIGUE,
            _BREATHLESS,
        ),
        history=(
            "a history of high blood pressure",
            "long-standing hypertension",
            "a previous heart attack",
            "a heart murmur heard in the past",
            "diabetes and high cholesterol",
        ),
        negations=("fever", "blood in the sputum", "productive cough"),
    ),
    DiagnosisSpec(
        name="pneumothorax",
        finding="very dark region without lung texture along one lung edge, with a sharp pleural line",
        symptoms=(
            ("sudden sharp chest pain on one side", "a stabbing pain in the chest", "sudden one-sided chest pain"),
            ("sudden shortness of breath", "abrupt breathlessness", "acute dyspnea"),
            ("rapid breathing", "fast shallow breathing", "tachypnea"),
            ("pain going to the shoulder", "pain radiating to the shoulder tip"),
            _CHEST_PAIN,
            _BREATHLESS,
        ),
        history=(
            "symptoms that started suddenly at rest",
            "a fall onto the ribs",
            "a rib injury playing rugby",
            "a tall thin build and heavy smoking",
            "a similar episode two years ago",
            "a recent long-haul flight",
        ),
        negations=("fever", "productive cough", "leg swelling", "weight loss"),
    ),
)

SPECS: dict[str, DiagnosisSpec] = {spec.name: spec for spec in _SPECS}
"""Diagnosis name -> its :class:`DiagnosisSpec`."""

DIAGNOSES: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
"""Label names, in a fixed order (index = class id)."""

RARE_DIAGNOSIS: str = "pneumothorax"
"""The deliberately rare class (2-5 % of cases)."""

DISTRACTORS: tuple[str, ...] = (
    "a mild headache",
    "some lower back pain",
    "trouble sleeping",
    "a sore knee",
    "heartburn after meals",
    "a lot of stress at work",
    "a stiff neck",
    "occasional dizziness when standing up quickly",
    "itchy skin",
    "a bit of indigestion",
)
"""Complaints unrelated to the chest, mixed into texts of every class."""

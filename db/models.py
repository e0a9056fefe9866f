"""ORM models of the diagnosis store (SQLAlchemy 2, typed declarative mapping).

Nullability lives in the ``Mapped[...]`` annotation; every constraint and index is named through
:data:`NAMING_CONVENTION` so that hand-written Alembic migrations and autogenerate agree on names across
SQLite and PostgreSQL.

Timestamps are stored timezone-aware and always come back as UTC ``datetime`` objects (see
:class:`UTCDateTime`), also on SQLite, which has no native timezone support.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AUDIT_ACTIONS",
    "CASE_STATUSES",
    "FLOW_RUN_STATUSES",
    "NAMING_CONVENTION",
    "ROLES",
    "THROTTLE_SCOPES",
    "AuditEntry",
    "Base",
    "Case",
    "FlowRun",
    "Image",
    "InboxManifest",
    "ModelPromotion",
    "ModelVersion",
    "Patient",
    "Prediction",
    "Reconstruction",
    "Review",
    "SignInThrottle",
    "SymptomNote",
    "UTCDateTime",
    "User",
    "utcnow",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint/index names; migrations spell out the same names with ``op.f(...)``."""

CASE_STATUSES: tuple[str, ...] = ("ingested", "rejected", "diagnosed", "failed")
"""Allowed values of ``cases.status``."""

FLOW_RUN_STATUSES: tuple[str, ...] = ("running", "completed", "failed")
"""Allowed values of ``flow_runs.status``."""

ROLES: tuple[str, ...] = ("clinician", "admin")
"""Allowed values of ``users.role``; admins may also launch generation jobs."""

AUDIT_ACTIONS: tuple[str, ...] = (
    "confirm", "override", "augment", "sign_in", "sign_in_failed", "sign_in_refused", "sign_in_lockout",
)  # fmt: skip
"""Allowed values of ``audit_log.action``: review and job actions, then every sign-in outcome (:mod:`db.signin`)."""

THROTTLE_SCOPES: tuple[str, ...] = ("user", "client")
"""Allowed values of ``sign_in_throttle.scope``: failures are counted per username and per client."""


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    """Render ``column IN ('a', 'b')`` for a check constraint."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always returns aware UTC datetimes.

    Naive datetimes are rejected on write (they are ambiguous); values read back from SQLite (naive) are
    tagged as UTC, values from PostgreSQL are converted to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC before storing it."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value, e.g. db.models.utcnow()")
        value = value.astimezone(UTC)
        # SQLite stores the text as-is; drop the offset so all rows sort and compare the same way.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return stored values as aware UTC datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention and the UTC timestamp type."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Patient(Base):
    """A patient, keyed by the manifest's ``patient_id``."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(Base):
    """One diagnostic case (one manifest row): an image and/or a symptom note plus its labels and status."""

    __tablename__ = "cases"
    __table_args__ = (CheckConstraint(_in_list("status", CASE_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_key: Mapped[str] = mapped_column(String(255), unique=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), index=True)
    label: Mapped[str | None] = mapped_column(String(255), index=True)
    split: Mapped[str | None] = mapped_column(String(32), index=True)
    dataset: Mapped[str | None] = mapped_column(String(255), index=True)  # None: stored before data sets existed
    status: Mapped[str] = mapped_column(String(32), index=True)
    error: Mapped[str | None] = mapped_column(Text)  # a reason a person can act on
    is_synthetic: Mapped[bool] = mapped_column(default=False, server_default=false())
    source: Mapped[str | None] = mapped_column(Text)  # manifest path the case came from
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the ingested content (idempotency)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class _CaseContent:
    """What every per-modality content row of a case has: its case (one row per case), a hash of the content and a
    time stamp."""

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Image(_CaseContent, Base):
    """The image of a case (at most one per case)."""

    __tablename__ = "images"

    path: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))  # png / nifti / dicom / npy / ...
    shape: Mapped[list[int]] = mapped_column(JSON)
    spacing: Mapped[list[float] | None] = mapped_column(JSON)


class SymptomNote(_CaseContent, Base):
    """The free-text symptom description of a case (at most one per case)."""

    __tablename__ = "symptom_notes"

    text: Mapped[str] = mapped_column(Text)


class ModelVersion(Base):
    """A trained model: its config, label names, metrics and checkpoint location."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    fusion: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    label_names: Mapped[list[str]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)  # e.g. {"val": {...}, "test": {...}}
    checkpoint_path: Mapped[str] = mapped_column(Text)


class Prediction(Base):
    """The prediction of one model version for one case."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("case_id", "model_version_id"),
        Index("ix_predictions_model_version_id_uncertainty", "model_version_id", "uncertainty"),  # worklist order
        Index("ix_predictions_model_version_id_label_uncertainty", "model_version_id", "label", "uncertainty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(255))
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)  # label -> probability
    latent: Mapped[list[float]] = mapped_column(JSON)  # fused latent mean, (D,)
    modalities: Mapped[list[str]] = mapped_column(JSON)  # e.g. ["image", "text"]
    uncertainty: Mapped[float | None]  # predictive entropy (nats) from sampling the latent posterior
    prediction_set: Mapped[list[str] | None] = mapped_column(JSON)  # split-conformal set of labels
    neighbours: Mapped[list[dict] | None] = mapped_column(JSON)  # graph classifier: [{"case_key", "weight"}]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reconstruction(Base):
    """A case's decoded views under one model version (``diagnosis reconstruct``); the images are files."""

    __tablename__ = "reconstructions"
    __table_args__ = (UniqueConstraint("case_id", "model_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    reconstruction_path: Mapped[str | None] = mapped_column(Text)  # image decoded from the fused latent
    image_from_text_path: Mapped[str | None] = mapped_column(Text)  # image decoded from the text-only latent
    nearest_texts: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # [{"text", "label"}], image -> text
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FlowRun(Base):
    """One run of a Prefect flow, with its outcome counts."""

    __tablename__ = "flow_runs"
    __table_args__ = (CheckConstraint(_in_list("status", FLOW_RUN_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(255))
    prefect_run_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(32))
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    hostname: Mapped[str | None] = mapped_column(String(255))  # machine that ran the flow
    pid: Mapped[int | None]  # process id of the run on that machine


class ModelPromotion(Base):
    """One decision on a model version: promoted to current (``latest``) or not, and the comparison behind it."""

    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    incumbent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    metric: Mapped[str | None] = mapped_column(String(64))  # e.g. val_macro_auc; None: promoted without comparison
    candidate_score: Mapped[float | None]
    incumbent_score: Mapped[float | None]
    promoted: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)


class InboxManifest(Base):
    """A manifest found in the inbox folder, by content hash: ingested once, or its error (retried next run)."""

    __tablename__ = "inbox_manifests"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
    flow_run_id: Mapped[int | None] = mapped_column(ForeignKey("flow_runs.id", ondelete="SET NULL"))
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)  # why the manifest could not be ingested


class User(Base):
    """A person who may sign in to the dashboard; disabled, never deleted (reviews refer to them)."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in_list("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, salt and parameters included
    role: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    """The current clinician review of a case (one per case); every change is also written to the audit log.

    ``version`` counts the changes: a form submits the version it saw and a stale one is refused
    (optimistic concurrency), so two clinicians never overwrite each other silently.
    """

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    final_label: Mapped[str] = mapped_column(String(255))
    predicted_label: Mapped[str | None] = mapped_column(String(255))  # the prediction shown when reviewing
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    comment: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One append-only audit row: who did what to which case, with the state before and after.

    User and case are copied as text (no foreign keys), so the log outlives and never cascades with them.
    Rows are only ever inserted; the migration adds triggers that refuse UPDATE and DELETE.
    """

    __tablename__ = "audit_log"
    __table_args__ = (CheckConstraint(_in_list("action", AUDIT_ACTIONS), name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str] = mapped_column(String(255))
    case_key: Mapped[str | None] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    comment: Mapped[str | None] = mapped_column(Text)


class SignInThrottle(Base):
    """Consecutive failed sign-ins of one username or one client, and the lockout they caused.

    The one mutable security table: a success deletes the row, a failure counts up; the history lives in
    ``audit_log``. ``subject`` is the typed username (known or not) or the client key of :mod:`db.signin`.
    """

    __tablename__ = "sign_in_throttle"
    __table_args__ = (
        UniqueConstraint("scope", "subject"),
        CheckConstraint(_in_list("scope", THROTTLE_SCOPES), name="scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(255))
    failures: Mapped[int] = mapped_column(default=0)  # consecutive failures since the last success or lockout
    last_failure_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]  # set when failures reached the policy's limit


class WebSession(Base):
    """A signed-in dashboard browser: what its session cookie is checked against on every rerun.

    Only hashes are stored: ``secret_hash`` of the cookie's secret (set when the one-time sign-in ticket is
    redeemed) and ``ticket_hash`` of that ticket until then. Sign-out sets ``revoked_at``; rows are kept for the
    record and pruned once expired.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    ticket_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # until redeemed
    ticket_expires_at: Mapped[datetime | None]
    secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # after the ticket is redeemed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)  # idle timeout counts from here
    expires_at: Mapped[datetime]  # absolute end, whatever the activity
    revoked_at: Mapped[datetime | None]  # signed out (or the account was disabled)

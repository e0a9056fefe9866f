"""Users, reviews with optimistic concurrency, the append-only audit log, the worklist and latent neighbours."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

import db
from db.models import AuditEntry

LABELS = ("normal", "pneumonia", "covid")


def _seed(url: str, make_case: Callable[..., db.CaseIn], n: int = 6) -> int:
    """``n`` cases predicted by one model (uncertainty i/10, case 0 without one) and one clinician; model id."""
    with db.session_scope(url) as session:
        db.upsert_cases(session, [make_case(f"c{i}", label=LABELS[i % 3]) for i in range(n)])
        model = db.register_model_version(session, name="m", fusion="poe", config={}, label_names=LABELS, metrics={},
                                          checkpoint_path="/m")  # fmt: skip
        ids = {c.case_key: c.id for batch in db.iter_case_inputs(session) for c in batch}
        db.save_predictions(session, [
            db.PredictionIn(ids[f"c{i}"], model, LABELS[i % 3], {LABELS[i % 3]: 0.9, "other": 0.1},
                            [float(i), 0.0], ("image",), uncertainty=None if i == 0 else i / 10,
                            prediction_set=(LABELS[i % 3],))
            for i in range(n)
        ])  # fmt: skip
        db.create_user(session, "ann", "password-ann", role="clinician")
        db.create_user(session, "bob", "password-bob", role="admin")
    return model


def test_users_hash_passwords_and_check_sign_in(db_url: str) -> None:
    with db.session_scope(db_url) as session:
        user = db.create_user(session, "ann", "secret-password")
        with pytest.raises(db.UserExistsError):
            db.create_user(session, "ann", "another-password")
        with pytest.raises(ValueError, match="too short"):
            db.create_user(session, "cid", "short")
        with pytest.raises(ValueError, match="unknown role"):
            db.create_user(session, "cid", "long-enough", role="root")
    assert user.role == "clinician" and user.active
    with db.session_scope(db_url) as session:
        stored = session.execute(text("SELECT password_hash FROM users")).scalar_one()
        assert stored.startswith("$argon2id$") and "secret-password" not in stored
        assert db.authenticate(session, "ann", "secret-password") == user
        assert db.authenticate(session, "ann", "wrong") is None
        assert db.authenticate(session, "nobody", "secret-password") is None
        db.set_user_active(session, "ann", False)
        assert db.authenticate(session, "ann", "secret-password") is None
        assert [u.username for u in db.list_users(session)] == ["ann"]
        with pytest.raises(LookupError):
            db.set_user_active(session, "nobody", False)


def test_review_versions_refuse_stale_forms_and_audit_every_change(db_url: str, make_case: Callable[..., db.CaseIn]) -> None:
    model = _seed(db_url, make_case)
    with db.session_scope(db_url) as session:
        first = db.submit_review(session, case_key="c1", username="ann", final_label="pneumonia", expected_version=0,
                                 predicted_label="pneumonia", model_version_id=model, comment="agree")  # fmt: skip
    assert (first.version, first.action) == (1, "confirm")
    with db.session_scope(db_url) as session, pytest.raises(db.StaleReviewError, match="ann changed this review"):
        db.submit_review(session, case_key="c1", username="bob", final_label="covid", expected_version=0)
    with db.session_scope(db_url) as session:
        second = db.submit_review(session, case_key="c1", username="bob", final_label="covid", expected_version=1,
                                  predicted_label="pneumonia", comment="CT says covid")  # fmt: skip
    assert (second.version, second.action, second.username) == (2, "override", "bob")
    with db.session_scope(db_url) as session:
        newest, oldest = db.audit_log(session, case_key="c1")
        assert (oldest.username, oldest.action, oldest.before) == ("ann", "confirm", None)
        assert newest.before["final_label"] == "pneumonia" and newest.after["final_label"] == "covid"
        assert newest.after["version"] == 2 and newest.comment == "CT says covid"
        assert db.review_counts(session) == {"confirmed": 0, "overridden": 1}
        with pytest.raises(LookupError):
            db.submit_review(session, case_key="nope", username="ann", final_label="covid", expected_version=0)
        with pytest.raises(PermissionError):
            db.submit_review(session, case_key="c2", username="ghost", final_label="covid", expected_version=0)


@pytest.mark.parametrize("statement", ["update", "delete"])
def test_audit_rows_cannot_be_changed_or_deleted(db_url: str, statement: str) -> None:
    with db.session_scope(db_url) as session:
        db.append_audit(session, username="ann", action="augment", after={"label": "covid", "n": 3})
    change = update(AuditEntry).values(comment="edited") if statement == "update" else delete(AuditEntry)
    with pytest.raises(DBAPIError, match="append-only"), db.session_scope(db_url) as session:
        session.execute(change)
    with db.session_scope(db_url) as session:
        [entry] = db.audit_log(session)
    assert entry.comment is None and entry.after == {"label": "covid", "n": 3}
    assert not hasattr(db, "delete_audit") and not hasattr(db, "update_audit")


def test_worklist_sorts_by_uncertainty_filters_and_pages(db_url: str, make_case: Callable[..., db.CaseIn]) -> None:
    model = _seed(db_url, make_case)
    everything = db.WorklistFilter(model_version_id=model)
    with db.session_scope(db_url) as session:
        db.submit_review(session, case_key="c5", username="ann", final_label="normal", expected_version=0)
        db.submit_review(session, case_key="c4", username="ann", final_label="pneumonia", expected_version=0)
        rows = db.list_worklist(session, everything)
        assert [r.case_key for r in rows] == ["c5", "c4", "c3", "c2", "c1", "c0"]  # NULL uncertainty last
        assert rows[0].uncertainty == pytest.approx(0.5) and rows[-1].uncertainty is None
        assert rows[0].reviewed_label == "normal" and rows[0].prediction_set == ("covid",)
        assert [r.case_key for r in db.list_worklist(session, everything, limit=2, offset=2)] == ["c3", "c2"]
        assert db.count_worklist(session, everything) == 6
        # keyset pages: each page starts after the previous page's last row, legacy rows (no uncertainty) last
        pages, after = [], None
        while page := db.list_worklist(session, everything, limit=2, after=after):
            pages.append([r.case_key for r in page])
            after = page[-1].cursor
        assert pages == [["c5", "c4"], ["c3", "c2"], ["c1", "c0"]]
        assert db.worklist_cursor_at(session, everything, 0) is None
        assert db.worklist_cursor_at(session, everything, 2) == rows[1].cursor
        assert [r.case_key for r in db.list_worklist(session, everything, after=db.worklist_cursor_at(session, everything, 4))] == ["c1", "c0"]
        assert db.worklist_cursor_at(session, everything, 6) == rows[-1].cursor
        assert db.list_worklist(session, everything, after=rows[-1].cursor) == []
        with pytest.raises(ValueError, match="not both"):
            db.list_worklist(session, everything, offset=2, after=rows[0].cursor)

        def keys(**filters: object) -> list[str]:
            where = db.WorklistFilter(model_version_id=model, **filters)  # type: ignore[arg-type]
            found = [r.case_key for r in db.list_worklist(session, where)]
            assert db.count_worklist(session, where) == len(found)
            for n in (0, 1, 3):
                assert db.count_worklist(session, where, limit=n) == min(n, len(found))
            return found

        assert keys(review="unreviewed") == ["c3", "c2", "c1", "c0"]
        assert keys(review="reviewed") == ["c5", "c4"]
        assert keys(review="disagreement") == ["c5"]  # c4 confirmed its prediction (pneumonia)
        assert keys(predicted_label="covid") == ["c5", "c2"]
        assert keys(min_uncertainty=0.25, max_uncertainty=0.45) == ["c4", "c3"]
        with pytest.raises(ValueError, match="unknown review filter"):
            keys(review="maybe")


def test_similar_cases_use_the_same_model_version_and_confirmed_labels(
    db_url: str, make_case: Callable[..., db.CaseIn]
) -> None:
    model = _seed(db_url, make_case)
    with db.session_scope(db_url) as session:
        db.submit_review(session, case_key="c2", username="ann", final_label="normal", expected_version=0)
        near = db.similar_cases(session, "c3", model, k=3)
        assert [(n.case_key, n.distance) for n in near] == [("c4", 1.0), ("c2", 1.0), ("c5", 2.0)]  # ties: newest
        assert near[0].confirmed_label == "pneumonia" and near[1].confirmed_label == "normal"  # review wins
        assert db.similar_cases(session, "c3", model + 1) == []
        assert len(db.similar_cases(session, "c3", model, pool=2)) == 2
        points = db.latent_sample(session, model, limit=4)
        assert [p.case_key for p in points] == ["c5", "c4", "c3", "c2"] and points[-1].label == "normal"
        assert sum(db.cases_per_day(session).values()) == 6


def test_keyset_pages_equal_offset_pages_with_ties_filters_and_legacy_rows(db_url: str, make_case: Callable[..., db.CaseIn]) -> None:
    keys = [f"k{i:02d}" for i in range(23)]
    with db.session_scope(db_url) as session:
        db.upsert_cases(session, [make_case(k, label=LABELS[i % 3]) for i, k in enumerate(keys)])
        model = db.register_model_version(session, name="m", fusion="poe", config={}, label_names=LABELS, metrics={},
                                          checkpoint_path="/m")  # fmt: skip
        ids = {c.case_key: c.id for batch in db.iter_case_inputs(session) for c in batch}
        db.save_predictions(session, [
            db.PredictionIn(ids[k], model, LABELS[i % 2], {LABELS[i % 2]: 0.9}, [0.0], ("text",),
                            uncertainty=None if i % 7 == 0 else (i % 4) / 10)  # many ties, three legacy rows
            for i, k in enumerate(keys)
        ])  # fmt: skip
        for where in (db.WorklistFilter(model_version_id=model),
                      db.WorklistFilter(model_version_id=model, predicted_label=LABELS[1]),
                      db.WorklistFilter(model_version_id=model, review="unreviewed", min_uncertainty=0.1)):
            whole = [r.case_key for r in db.list_worklist(session, where, limit=100)]
            assert len(whole) == db.count_worklist(session, where) > 0
            for size in (1, 3, 5):
                paged, after = [], None
                while page := db.list_worklist(session, where, limit=size, after=after):
                    assert len(page) <= size
                    paged.extend(r.case_key for r in page)
                    after = page[-1].cursor
                assert paged == whole, (where, size)
                for start in range(0, len(whole), size):  # a jump to any page gives the page OFFSET gives
                    jumped = db.list_worklist(session, where, limit=size, after=db.worklist_cursor_at(session, where, start))
                    assert [r.case_key for r in jumped] == whole[start : start + size]
            cursors = [r.cursor for r in db.list_worklist(session, where, limit=100)]
            for known in range(len(whole)):  # walks and counts from a known page start, across ties and legacy rows
                rest = len(whole) - known - 1
                assert db.count_worklist(session, where, after=cursors[known]) == rest
                assert db.count_worklist(session, where, after=cursors[known], limit=3) == min(3, rest)
                for step in range(rest + 2):
                    expected = cursors[known + step] if step <= rest else None
                    assert db.worklist_cursor_at(session, where, step, cursors[known]) == expected, (where, known, step)

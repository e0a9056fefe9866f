"""Decoded views in the store: one row per case and model version, replaced when computed again."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import CaseIn, get_reconstruction, register_model_version, save_reconstruction, upsert_cases
from db.models import Reconstruction


def _model(session: Session, name: str) -> int:
    return register_model_version(session, name=name, fusion="poe", config={}, label_names=["a", "b"], metrics={},
                                  checkpoint_path=f"/ckpt/{name}")  # fmt: skip


def test_views_are_stored_per_model_version_and_replaced(session: Session, make_case: Callable[..., CaseIn]) -> None:
    upsert_cases(session, [make_case("C-1")])
    first, second = _model(session, "m1"), _model(session, "m2")
    assert get_reconstruction(session, "C-1", first) is None
    texts = [{"text": "dry cough", "label": "a"}]
    save_reconstruction(session, "C-1", first, reconstruction_path="/r/1.png", image_from_text_path=None, nearest_texts=texts)
    save_reconstruction(session, "C-1", second, reconstruction_path="/r/2.png", image_from_text_path="/t/2.png",
                        nearest_texts=[])  # fmt: skip
    again = save_reconstruction(session, "C-1", first, reconstruction_path="/r/1b.png", image_from_text_path=None,
                                nearest_texts=texts)  # fmt: skip
    session.commit()
    stored = get_reconstruction(session, "C-1", first)
    assert stored == again and stored.reconstruction_path == "/r/1b.png" and stored.nearest_texts == texts
    assert get_reconstruction(session, "C-1", second).image_from_text_path == "/t/2.png"
    assert session.scalar(select(func.count()).select_from(Reconstruction)) == 2
    with pytest.raises(LookupError, match="C-9"):
        save_reconstruction(session, "C-9", first, reconstruction_path=None, image_from_text_path=None, nearest_texts=[])

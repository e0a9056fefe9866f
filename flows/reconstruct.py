"""Reconstruct flow: a case's decoded views (reconstruction, text -> image, image -> nearest texts) for review.

The decoded images are files under ``<home>/reconstructions/v<model>/``; the record (their paths and the nearest
real texts) goes to the store, so the dashboard shows them without running a model or reading beside the store.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from prefect import flow

import db
from diagnosis.device import resolve_device
from diagnosis.generation import decode_case, nearest_rows, write_decoded_image
from diagnosis.settings import Settings
from diagnosis.classify import load_model
from diagnosis.features import build_features
from flows.common import real_texts, resolve_model, text_encoder
from flows.tracking import recorded_run

__all__ = ["reconstruct_flow"]


@flow(name="reconstruct")
def reconstruct_flow(db_url: str, home: str, case_key: str, model: str = "latest", device: str = "auto") -> dict:
    """Decode one case's views with a model version and write them next to the store.

    Returns:
        The written record: model version, image paths (or None) and the nearest real symptom texts.

    Raises:
        LookupError: Unknown case or model version.
    """
    with recorded_run(db_url, "reconstruct") as run:
        version = resolve_model(db_url, model)
        run.model_version_id = version.id
        with db.session_scope(db_url) as session:
            detail = db.get_case(session, case_key)
        if detail is None:
            raise LookupError(f"case {case_key!r} not found; list cases with `diagnosis cases`")
        target_device = resolve_device(device)
        net = load_model(version.checkpoint_path, target_device)
        encoder = text_encoder(net.spec.text, home)
        case = SimpleNamespace(image_path=detail.image_path, text=detail.text)
        table = build_features([case], net.spec.modalities.image, encoder, lexical=net.lexical)
        views = decode_case(net, table, 0, target_device)
        stem = Settings(home=Path(home)).reconstruction_stem(version.id, case_key)
        stem.parent.mkdir(parents=True, exist_ok=True)
        paths = {name: None if (pixels := getattr(views, name)) is None else
                 str(write_decoded_image(pixels, stem.with_name(f"{stem.name}-{name}"))[0])
                 for name in ("reconstruction", "image_from_text")}  # fmt: skip
        nearest: list[dict[str, str]] = []
        if views.text_from_image is not None and encoder is not None:
            bank, labels = real_texts(db_url)
            if bank:
                rows = nearest_rows(views.text_from_image[None], encoder.encode(bank), k=3)[0]
                nearest = [{"text": bank[i], "label": labels[i]} for i in rows]
        with db.session_scope(db_url) as session:
            db.save_reconstruction(session, case_key, version.id, reconstruction_path=paths["reconstruction"],
                                   image_from_text_path=paths["image_from_text"], nearest_texts=nearest)
        run.add(cases=1)
        return {"model_version_id": version.id, "case_key": case_key, **paths, "nearest_texts": nearest}

"""Reconstruct flow: a case's decoded views (reconstruction, text -> image, image -> nearest texts) for review.

The views are written beside the store, ``<home>/reconstructions/v<model>/<case>.json`` plus images, so the
dashboard can show them without running a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from prefect import flow

import db
from diagnosis.device import resolve_device
from diagnosis.generation import case_views, nearest_rows
from diagnosis.settings import Settings
from diagnosis.classify import load_model
from diagnosis.features import build_features
from flows.common import real_texts, resolve_model, save_decoded_image, text_encoder
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
        views = case_views(net, table, 0, target_device)
        target = Settings(home=Path(home)).views_file(version.id, case_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        record: dict = {"model_version_id": version.id, "case_key": case_key, "nearest_texts": []}
        for name in ("reconstruction", "image_from_text"):
            pixels = getattr(views, name)
            record[name] = None if pixels is None else save_decoded_image(pixels, target.with_name(f"{target.stem}-{name}")).path
        if views.text_from_image is not None and encoder is not None:
            bank, labels = real_texts(db_url)
            if bank:
                rows = nearest_rows(views.text_from_image[None], encoder.encode(bank), k=3)[0]
                record["nearest_texts"] = [{"text": bank[i], "label": labels[i]} for i in rows]
        target.write_text(json.dumps(record, indent=2))
        run.add(cases=1)
        return record

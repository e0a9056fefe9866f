"""Augmentation page: generated samples of rare diagnoses, and an admin action to generate more."""

from __future__ import annotations

import streamlit as st

from dashboard import auth, data, imaging, insight_data, jobs
from dashboard.escape import code, md
from diagnosis.settings import Settings

user = auth.require_user()
st.title("Augmentation")
url = data.store_url()
collected = {k: v for k, v in data.label_counts(url).items() if k != "unlabelled"}
generated = insight_data.synthetic_counts(url)
labels = sorted(set(collected) | set(generated), key=lambda name: (collected.get(name, 0), name))  # rarest first
if not labels:
    st.info("No labelled cases yet — run `diagnosis demo`.")
    st.stop()

st.dataframe({"diagnosis": labels, "collected": [collected.get(n, 0) for n in labels],
              "generated": [generated.get(n, 0) for n in labels]}, hide_index=True, key="augment_counts")  # fmt: skip
label = st.selectbox("Diagnosis (rarest first)", labels, key="augment_label")

samples = insight_data.synthetic_samples(url, label)
if not samples:
    st.caption(f"No generated samples of {md(label)} in the store.")
for sample, column in zip(samples, st.columns(3) * (len(samples) // 3 + 1), strict=False):
    with column.container(border=True):
        st.caption(f"{md(sample.case_key)} · {sample.generator.upper()}")
        if sample.image_path is not None:
            try:
                array = data.image_array(sample.image_path)
                middle = array.shape[-1] // 2 if array.ndim == 3 else None
                plane = imaging.display_plane(array, sample.image_format, middle)
                st.image(imaging.to_uint8(plane), width="stretch", output_format="PNG")
            except (ValueError, OSError) as error:
                st.warning(f"Cannot display the image: {md(error)}")
        st.text(sample.text or "(no text)")

st.subheader("Generate more")
current = data.latest_model(url)
if user.role != "admin":
    st.caption("Only administrators can generate samples.")
elif jobs.augment_command() is None:
    st.warning("Generation is unavailable: this installation has no `diagnosis augment` command.")
else:
    generative = current is None or current.config.get("generative", True)  # versions before the flag: VAEs
    if not generative:
        st.info(f"The current model, {md(current.name)}, is a deterministic autoencoder: it has no prior over its codes "
                "to sample, so its per-class Gaussians cannot generate cases. Its latent GAN can (trained on the "
                "model's training codes on first use).")
    choices = ["gan"] if not generative else ["vae", "gan"]
    generator = st.radio("Generator", choices, horizontal=True, key="augment_generator",
                         format_func=lambda g: {"vae": "VAE (per-class latent Gaussians)",
                                                "gan": "GAN (conditional, on the training latents)"}[g])
    n = st.number_input("Samples", min_value=1, max_value=1000, value=20, key="augment_n")
    if st.button(f"Generate {n} samples of {md(label)}", key="augment_start"):
        log = jobs.launch_augment(url, user.username, label, int(n), Settings.from_env().home / "logs", generator)
        st.success(f"Started {code(f'diagnosis augment --label {label} --n {n} --generator {generator}')}; log: "
                   f"{code(log)}. New samples appear here when it finishes.")

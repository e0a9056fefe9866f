"""Read models for the dashboard's screens: the review worklist and the model insight (neighbours, latents,
trends). They read across aggregates (cases, predictions, reviews) for one screen each; writes never live here."""

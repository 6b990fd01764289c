"""The teacher: loading and fine-tuning any HF encoder, per-layer probes, and the on-disk cache
of everything the student learns from (so no trial ever runs the teacher)."""

"""Stable Diffusion code: loading diffusers inpainting pipelines (pipelines.py), background repainting of
object compositions for s3_background_repainting.py (repaint.py), SD inpainting as a gap-filling method
(fill.py) and the notebook's comparison of every method (compare.py)."""

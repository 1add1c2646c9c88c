"""Scores beside the pictures: per-cell metrics, the EditEval runner and the LMM Score judge.

``evaluation.metrics``: CLIP score, CLIP directional similarity, LPIPS / SSIM / PSNR against the source
(outside the mask when there is one) and the DINO self-similarity structure distance, from the backbone's
metric add-ons. ``evaluation.editeval``: the benchmark runner behind ``python -m evaluation evaluate``.
``evaluation.judge``: the multimodal judge (OpenAI-compatible endpoint or a local transformers model).
"""

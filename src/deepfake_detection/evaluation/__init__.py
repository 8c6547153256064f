"""Evaluation: scoring a Detector on labelled data, under perturbations and attacks; rendering.

Computing lives in report, perturbations and robustness; Markdown, plots and the model card
in rendering.
"""

"""Inference: a saved bundle -> a Detector's verdicts, and what is read or drawn from them.

Imports only the foundations (errors, imaging, metrics, models); every layer above uses the
Detector defined here, so a prediction means the same thing everywhere.
"""

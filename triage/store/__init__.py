"""Triage's SQL, one module per topic (photos, their scores, saliency overlays); each query or transaction
is one named function.

Writes to one consultation's photos or scores are serialised by an advisory lock on the consultation
(`locks`), always taken before any row lock.
"""

"""Stage 5: benchmark accuracy of a served model, and judge-rated quality of exported datasets.

Pure logic only (no Prefect): ``flows/evaluate.py`` and ``flows/score.py`` wrap it.
"""

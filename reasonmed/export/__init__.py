"""Dataset export: the three ReasonMed datasets, their card and their writers."""

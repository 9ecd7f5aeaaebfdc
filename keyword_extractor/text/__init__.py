"""Text only: Korean words and the candidate spans a keyword may be (Kiwi), keyword lists and their
metrics, the Kiwi noun-phrase rule every model must beat, and what is known about a candidate span.
"""

"""Scoring a model beside the Kiwi rule on a test file (`python -m keyword_extractor.evaluation`), and the
report, chart, predictions and metrics files it writes.
"""

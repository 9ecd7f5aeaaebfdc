"""The one inference path (`KeywordExtractor`), the precision decided on the machine that runs it, and
resumable bulk prediction (`python -m keyword_extractor.inference.predict`).
"""

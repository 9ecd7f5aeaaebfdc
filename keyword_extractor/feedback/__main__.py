"""`python -m keyword_extractor.feedback`: see `keyword_extractor.feedback.cli`."""

from keyword_extractor.feedback.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

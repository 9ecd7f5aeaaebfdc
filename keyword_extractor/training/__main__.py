"""`python -m keyword_extractor.training`: see `keyword_extractor.training.cli`."""

from keyword_extractor.training.cli import main

if __name__ == "__main__":
    main()

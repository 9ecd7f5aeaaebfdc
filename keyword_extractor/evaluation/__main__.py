"""`python -m keyword_extractor.evaluation`: see `keyword_extractor.evaluation.cli`."""

import sys

from keyword_extractor.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())

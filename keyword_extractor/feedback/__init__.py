"""Corrections from the people who use the model, on their way back into the training data.

`rules` checks a correction as a training row is checked; `store` keeps corrections (SQLite by
default, any SQLAlchemy URL such as PostgreSQL) with their review state; `export` writes the accepted
ones as a training file. Only accepted corrections ever leave the store.
"""

URL_VARIABLE = "KEYWORD_FEEDBACK_URL"  # the store's SQLAlchemy URL, for the service, the app and the CLI alike
DEFAULT_URL = "sqlite:///artifacts/feedback.db"  # relative to the working directory, like artifacts/ itself

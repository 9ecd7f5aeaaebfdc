"""A client's mistake is one log line, not an error with a traceback.

BentoML logs every refused request body (a pydantic ValidationError: 400) and every BentoML exception
it answers, 4xx included, as `[ERROR] Exception on /extract [POST]` with a 25-line traceback: a log
full of other people's typos, where the server's own faults drown. This filter turns those records
into one INFO line that says what was wrong; 5xx and everything else are left as they are.
"""

from __future__ import annotations

import logging

BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"  # where BentoML's `log_exception` writes


def client_error_summary(error: BaseException) -> str | None:
    """One line for an exception that is the client's fault (answered 4xx); None for the server's own."""
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors(include_context=False, include_input=False)[:3]
        )
        return f"400 ({error.error_count()} validation error(s): {problems})"
    if isinstance(error, BentoMLException) and error.error_code.value < 500:
        return f"{error.error_code.value} ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    return None


class ClientErrorsAsInfo(logging.Filter):
    """Rewrites BentoML's exception records for 4xx answers into one INFO line without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        summary = client_error_summary(error) if error is not None else None
        if summary is None:
            return True
        request = record.getMessage().removeprefix("Exception on ")  # "/extract [POST]"
        record.msg, record.args = "%s refused: %s", (request, summary)
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    """Once per process: a second filter of the same kind is not added."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(existing, ClientErrorsAsInfo) for existing in logger.filters):
        logger.addFilter(ClientErrorsAsInfo())

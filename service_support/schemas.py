"""The service's request and response bodies (its OpenAPI schema), bounded by the service settings.

Pydantic only (no BentoML): the app and scripts import the same types. The two limits a request body
has are read once from the environment (`KEYWORD_MAX_TEXT_CHARS`, `KEYWORD_MAX_BATCH_TEXTS`) through
`ServiceSettings`, because a type's bounds are fixed when it is defined.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from keyword_extractor.text.keywords import INVISIBLE
from service_support.settings import MAX_BEAMS, MAX_KEYWORDS, load_settings

_LIMITS = load_settings()
MAX_KEYWORD_CHARS = 100  # one keyword of a correction
MAX_COMMENT_CHARS = 1000
MAX_TEXT_CHARS, MAX_BATCH_TEXTS = _LIMITS.max_text_chars, _LIMITS.max_batch_texts


# "Not blank" spelled out once, for the validator and for the OpenAPI pattern alike: Python's `str.strip`
# and JSON Schema's `\S` disagree on a few characters (U+0085, U+001C..U+001F, U+FEFF). Invisible code
# points (zero-width spaces, joiners, bidi marks: `keywords.INVISIBLE`) are blank too.
NOT_BLANK = (
    r"[^\t\n\v\f\r \u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff" + INVISIBLE + "]"
)
_NOT_BLANK = re.compile(NOT_BLANK)


def _has_text(text: str) -> str:
    if not _NOT_BLANK.search(text):
        raise ValueError("text is blank: it must contain at least one non-space character")
    return text


Question = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description=f"a Korean question, 1..{MAX_TEXT_CHARS} characters, not only spaces",
        json_schema_extra={"pattern": NOT_BLANK},
    ),
    AfterValidator(_has_text),
]


class Options(BaseModel):
    """Per-request options; a field left out means the model's own default (bounded by the server)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_keywords: int | None = Field(None, ge=1, le=MAX_KEYWORDS, description="cap on keywords per question")
    filter_ungrounded: bool | None = Field(None, description="drop keywords that do not occur in the question")
    num_beams: int | None = Field(None, ge=1, le=MAX_BEAMS, description="beam width (1 = greedy, fastest)")

    @field_validator("max_keywords", "filter_ungrounded", "num_beams", mode="before")
    @classmethod
    def _no_null(cls, value: object) -> object:
        # BentoML's OpenAPI page shows these as plain integer/boolean, so an explicit null is refused too.
        if value is None:
            raise ValueError("null is not allowed: give a value or leave the field out")
        return value

    def as_json(self) -> dict[str, object]:
        """The body fields a client sends: options left to the service are left out (it refuses null)."""
        return self.model_dump(exclude_none=True)


class ExtractRequest(Options):
    model_config = ConfigDict(
        title="ExtractRequest", json_schema_extra={"example": {"text": "여행자 휴대품 면세한도는 얼마인가요?"}}
    )

    text: Question


class ExtractBatchRequest(Options):
    model_config = ConfigDict(
        title="ExtractBatchRequest",
        json_schema_extra={"example": {"texts": ["여행자 휴대품 면세한도는 얼마인가요?", "관세 체납하면 어떻게 돼?"]}},
    )

    texts: list[Question] = Field(max_length=MAX_BATCH_TEXTS, description=f"at most {MAX_BATCH_TEXTS} questions")


Keyword = Annotated[str, Field(min_length=1, max_length=MAX_KEYWORD_CHARS)]


class FeedbackRequest(BaseModel):
    """A correction: the question, what the model answered (and which version), the keywords it should have."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        title="FeedbackRequest",
        json_schema_extra={
            "example": {
                "query": "여행자 휴대품 면세한도는 얼마인가요?",
                "model_keywords": ["여행자", "면세한도"],
                "model_version": "7",
                "keywords": ["여행자 휴대품", "면세한도"],
                "comment": "여행자 휴대품 is one term",
            }
        },
    )

    query: Question
    model_keywords: list[Keyword] = Field(max_length=MAX_KEYWORDS, description="the keywords the model gave")
    model_version: str = Field(max_length=200, description="the version that gave them (`model.version`)")
    keywords: list[Keyword] = Field(
        max_length=MAX_KEYWORDS, description="the corrected keywords: spans of the question, verbatim"
    )
    comment: str = Field("", max_length=MAX_COMMENT_CHARS, description="optional: why, for the reviewer")


class FeedbackReceipt(BaseModel):
    id: int
    created: bool = Field(description="false: the same correction was already stored; this is its id")
    status: str = Field(description='"pending" until a reviewer accepts or rejects it')


class ModelRef(BaseModel):
    """Which model answered: the registered name, version and alias it was imported under."""

    name: str
    version: str
    alias: str

    @property
    def label(self) -> str:
        alias = f" ({self.alias})" if self.alias else ""
        return f"{self.name} v{self.version}{alias}"


class ExtractResponse(BaseModel):
    keywords: list[str]
    model: ModelRef


class ExtractBatchResponse(BaseModel):
    keywords: list[list[str]] = Field(description="one list per question, in input order")
    model: ModelRef


class Decoding(BaseModel):
    num_beams: int
    max_num_beams: int
    grounded_decoding: bool
    grounding: str = Field(
        description='"morphemes": keywords are whole spans of Kiwi words of the question; "substrings": any '
        'substring of it; "off": unconstrained'
    )
    filter_ungrounded: bool
    max_keywords: int
    max_new_tokens: int
    max_source_length: int
    quantize: str = Field(description='"int8" or "off" (fp32): the precision the model service runs in')


class Precision(BaseModel):
    """How the model service chose its precision when it loaded the model (`inference.serving_precision`)."""

    requested: str = Field(description='KEYWORD_QUANTIZE: "auto" (decide on this machine), "off" or "int8" (forced)')
    int8_allowed: bool = Field(description="whether training's validation F1 check allows int8 for this model")
    effective: str = Field(description='"int8" or "off" (fp32): what runs')
    reason: str
    calibration: dict | None = Field(
        None, description="fp32 vs int8 timings of the model's layers on this CPU, when 'auto' measured them"
    )


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str
    tag: str
    test_f1: float | None
    test_digest: str
    mlflow_run_id: str
    base_model: str
    decoding: Decoding
    precision: Precision | None = Field(None, description="null until the model service has loaded the model")
    limits: dict[str, int]


class ExtractJob(BaseModel):
    """One question with fully resolved options: what the model service batches."""

    text: str
    num_beams: int
    max_keywords: int
    filter_ungrounded: bool

"""The app's side of the feedback loop: correct an answer in Chat or rows in Batch, review in Review.

Corrections go to the service (`POST /feedback`), which checks them with the labelling rules and
stores them as pending. The Review tab reads and decides them in the store itself
(KEYWORD_FEEDBACK_URL), and only appears when KEYWORD_REVIEWER names the person reviewing: a user
of the app can send corrections but never accept their own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from app_support import client
from app_support.client import ServiceError
from service_support.schemas import FeedbackRequest

REVIEWER_VARIABLE = "KEYWORD_REVIEWER"


def reviewer() -> str:
    """Who reviews in this app, or '' when the Review tab is off."""
    return os.environ.get(REVIEWER_VARIABLE, "").strip()


def send(url: str, correction: dict) -> tuple[bool, str]:
    """(saved, what to tell the person): the receipt, or why the correction was refused."""
    try:
        receipt = client.send_feedback(url, FeedbackRequest(**correction))
    except ValidationError as error:
        return False, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    except ServiceError as error:
        return False, error.message
    if not receipt.created:
        return True, f"Already saved as correction #{receipt.id} ({receipt.status})."
    return True, f"Saved as correction #{receipt.id}: it waits for review before it can reach training."


def correction_form(url: str, turn: dict, key: str) -> None:
    """Under a Chat answer: edit its keywords (remove a tag, type a span of the question) and send them."""
    with st.expander("Correct these keywords", icon=":material/edit:"):
        corrected = st.multiselect(
            "Keywords, as they should be",
            options=turn["keywords"],
            default=turn["keywords"],
            accept_new_options=True,
            key=f"{key}_keywords",
            help="Remove a wrong keyword, or type a missing one exactly as it is written in the question.",
        )
        comment = st.text_input("Comment (optional)", key=f"{key}_comment", max_chars=1000)
        if st.button("Send correction", key=f"{key}_send", icon=":material/send:"):
            saved, message = send(
                url,
                {
                    "query": turn["question"],
                    "model_keywords": turn["keywords"],
                    "model_version": turn["model"]["version"],
                    "keywords": corrected,
                    "comment": comment,
                },
            )
            (st.success if saved else st.error)(message)


def send_edited_rows(url: str, questions: list[str], answered: list[list[str]], edited: list[list[str]], version: str):
    """Batch: send every row whose keywords were edited; the counts and each refusal's reason."""
    changed = [i for i, (before, after) in enumerate(zip(answered, edited, strict=True)) if list(before) != list(after)]
    saved, refused = 0, []
    for index in changed:
        correction = {
            "query": questions[index],
            "model_keywords": list(answered[index]),
            "model_version": version,
            "keywords": list(edited[index]),
        }
        ok, message = send(url, correction)
        saved += ok
        if not ok:
            refused.append(f"row {index + 1}: {message}")
    return len(changed), saved, refused


def review_tab(url: str, name: str) -> None:
    """Pending corrections beside what the model said then and what the champion says now; decide many at once."""
    from keyword_extractor.feedback import DEFAULT_URL, URL_VARIABLE
    from keyword_extractor.feedback.store import FeedbackStore

    store = FeedbackStore(os.environ.get(URL_VARIABLE) or DEFAULT_URL)
    pending = store.corrections("pending")
    counts = store.counts()
    st.caption(
        f"Reviewing as **{name}** · {counts['pending']} pending · {counts['accepted']} accepted · "
        f"{counts['rejected']} rejected. Only accepted corrections are ever exported for training."
    )
    if pending:
        _decide(url, store, pending, name)
    else:
        st.info("No corrections wait for review.", icon=":material/inbox:")
    _audit_rows()


def _decide(url: str, store, pending, name: str) -> None:
    questions = [stored.correction.query for stored in pending]
    try:
        now = client.extract_batch(url, questions).keywords
    except ServiceError as error:
        st.warning(f"The champion's answers are not available: {error.message}", icon=":material/cloud_off:")
        now = [[] for _ in questions]
    frame = pd.DataFrame(
        {
            "id": [stored.id for stored in pending],
            "question": questions,
            "model then": [stored.correction.model_keywords for stored in pending],
            "corrected": [stored.correction.keywords for stored in pending],
            "champion now": now,
            "comment": [stored.correction.comment for stored in pending],
        }
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={name: st.column_config.ListColumn(name) for name in ("model then", "corrected", "champion now")},
    )
    ids = frame["id"].tolist()
    label = {stored.id: f"#{stored.id} {stored.correction.query[:40]}" for stored in pending}
    accept = st.multiselect("Accept", ids, format_func=label.get, key="review_accept")
    reject = st.multiselect("Reject", [i for i in ids if i not in accept], format_func=label.get, key="review_reject")
    if st.button("Apply decisions", type="primary", icon=":material/task_alt:", key="apply_review"):
        done = store.review(accept, "accepted", name) + store.review(reject, "rejected", name)
        st.success(f"{len(accept)} accepted, {len(reject)} rejected ({done} recorded).")


def _audit_rows(runs: Path = Path("artifacts/runs")) -> None:
    """The newest label audit's likely mislabelled training rows, for the same reviewer to look at."""
    reports = sorted(runs.glob("*/validation/label_audit.json"), key=lambda path: path.stat().st_mtime)
    if not reports:
        return
    suspects = json.loads(reports[-1].read_text(encoding="utf-8")).get("likely_mislabelled") or []
    with st.expander(f"Training rows the label audit flags ({len(suspects)}, {reports[-1].parent.parent.name})"):
        st.dataframe(pd.DataFrame(suspects), hide_index=True, width="stretch")

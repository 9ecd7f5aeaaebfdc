"""Try the keyword service in a browser: one question at a time (Chat) or a whole file (Batch).

A wrong answer can be corrected where it is shown (Chat: per answer; Batch: edited rows) and sent to the
service's `POST /feedback` for review. With KEYWORD_REVIEWER set (the reviewer's name), a Review tab
lists the pending corrections beside the champion's answer now, to accept or reject
(`app_support.corrections`).

    streamlit run app.py      # service URL from KEYWORD_SERVICE_URL, default http://127.0.0.1:3000

The app only talks HTTP to the BentoML service (`app_support.client`) and loads no model, so it
starts in seconds and shows exactly what the service answers. What the model, the service or a file
says is rendered as text: the little HTML built here only ever contains `html.escape`d values.
"""

from __future__ import annotations

import html
import os
import re

import pandas as pd
import streamlit as st

from app_support import client
from app_support.client import ModelInfo, Options, ServiceError
from app_support.corrections import correction_form, review_tab, reviewer, send_edited_rows
from app_support.question_files import (
    MAX_FILE_BYTES,
    MAX_QUESTIONS,
    QuestionFileError,
    Questions,
    read_question_file,
    results_csv,
    results_jsonl,
    too_long,
)
from keyword_extractor.text.keywords import parse_keywords
from service_support.settings import MAX_KEYWORDS  # the service's upper bound for `max_keywords`

EXAMPLES = (
    "여행자 휴대품 면세한도는 얼마인가요?",
    "해외직구 물품 통관 진행 상황은 어디서 조회하나요?",
    "관세 체납하면 어떻게 돼?",
)

CSS = """
<style>
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }
.kw-chips { display: flex; flex-wrap: wrap; gap: 0.4rem; margin: 0.15rem 0 0.45rem; }
.kw-chip {
  background: #eaf1ff; color: #123c8c; border: 1px solid #c5d7fb; border-radius: 999px;
  padding: 0.18rem 0.75rem; font-size: 0.95rem; font-weight: 600; line-height: 1.5; white-space: nowrap;
}
.kw-none { color: #6b7280; font-style: italic; margin-bottom: 0.4rem; }
.kw-meta { display: flex; flex-wrap: wrap; gap: 0.9rem; color: #6b7280; font-size: 0.8rem; }
.kw-alias {
  background: #e7f7ee; color: #146c43; border-radius: 4px; padding: 0 0.4rem; margin-left: 0.3rem; font-weight: 600;
}
.kw-health { display: flex; align-items: center; gap: 0.5rem; font-weight: 600; font-size: 0.92rem; }
.kw-health small { font-weight: 400; color: #6b7280; }
.kw-dot { width: 0.7rem; height: 0.7rem; border-radius: 50%; flex: none; }
.kw-health.ok .kw-dot { background: #16a34a; box-shadow: 0 0 0 3px #bbf7d0; }
.kw-health.down .kw-dot { background: #dc2626; box-shadow: 0 0 0 3px #fecaca; }
.kw-facts { width: 100%; border-collapse: collapse; font-size: 0.85rem; }
.kw-facts th {
  text-align: left; color: #6b7280; font-weight: 500; padding: 0.15rem 0.6rem 0.15rem 0; white-space: nowrap;
}
.kw-facts td { padding: 0.15rem 0; word-break: break-all; }
.kw-facts tr + tr { border-top: 1px solid #eef0f4; }
</style>
"""

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>$~|#])")


def as_markdown_text(text: str) -> str:
    """Backslash-escape what Markdown (and Streamlit's LaTeX `$`) would interpret, for st.error & co."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def default_url() -> str:
    return os.environ.get("KEYWORD_SERVICE_URL", "").strip() or client.DEFAULT_URL


@st.cache_data(ttl=10, show_spinner=False)
def cached_health(url: str) -> client.Health:
    return client.health(url)


@st.cache_data(ttl=60, show_spinner=False)
def cached_model_info(url: str) -> ModelInfo:
    return client.model_info(url)  # a ServiceError is not cached: the next rerun asks again


def recheck() -> None:
    cached_health.clear()
    cached_model_info.clear()


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def chips_html(keywords: list[str]) -> str:
    if not keywords:
        return '<div class="kw-none">No keywords found in this question.</div>'
    chips = "".join(f'<span class="kw-chip">{html.escape(keyword)}</span>' for keyword in keywords)
    return f'<div class="kw-chips">{chips}</div>'


def model_html(model: dict[str, str]) -> str:
    alias = f'<span class="kw-alias">{html.escape(model["alias"])}</span>' if model.get("alias") else ""
    return f"{html.escape(model['name'])} v{html.escape(model['version'])}{alias}"


def show_health(health: client.Health) -> None:
    state, words = ("ok", "Service ready") if health.ready else ("down", "Service not ready")
    detail = "" if health.ready else f"<br><small>{html.escape(health.detail)}</small>"
    st.html(f'<div class="kw-health {state}"><span class="kw-dot"></span><div>{words}{detail}</div></div>')


# --- sidebar ------------------------------------------------------------------------------------------------


def sidebar() -> tuple[str, ModelInfo | None, str | None, Options]:
    """Service URL, health, model facts and decoding options; returns what the tabs need."""
    with st.sidebar:
        st.header("Service")
        url = st.text_input("Service URL", value=default_url(), key="service_url", help="The BentoML keyword service")
        try:
            url = client.normalize_url(url)
        except ServiceError as error:
            show_health(client.Health(False, "invalid URL"))
            return url, None, error.message, Options()
        show_health(cached_health(url))
        st.button("Check again", icon=":material/refresh:", on_click=recheck, key="recheck", type="tertiary")

        info: ModelInfo | None
        problem: str | None = None
        try:
            info = cached_model_info(url)
        except ServiceError as error:
            info, problem = None, error.message

        st.header("Model")
        if info is None:
            st.caption("No model information: the service does not answer.")
            return url, None, problem, Options()
        facts = {
            "Name": info.model.name,
            "Version": info.model.version,
            "Alias": info.model.alias or "—",
            "Test F1": "—" if info.test_f1 is None else f"{info.test_f1:.3f}",
            "Base model": info.base_model or "—",
            "Limits": f"{info.max_text_chars:,} chars · {info.max_batch_texts:,} per batch",
        }
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items())
        st.html(f'<table class="kw-facts">{rows}</table>')

        st.header("Decoding")
        max_keywords = st.slider(
            "Max keywords", 1, MAX_KEYWORDS, value=min(info.max_keywords, MAX_KEYWORDS), key="max_keywords"
        )
        grounded = st.toggle(
            "Only keywords found in the question",
            value=info.filter_ungrounded,
            key="filter_ungrounded",
            help="Drop keywords that do not occur verbatim in the question.",
        )
        beams = 1
        if info.max_num_beams > 1:  # a slider needs two values to choose from
            beams = st.slider(
                "Beam width",
                1,
                info.max_num_beams,
                value=max(1, min(info.num_beams, info.max_num_beams)),
                key="num_beams",
                help="1 is greedy decoding, the fastest; wider beams search more and take longer.",
            )
        st.caption("Sent with every request; the model's defaults are preselected.")
        return url, info, None, Options(max_keywords=max_keywords, filter_ungrounded=grounded, num_beams=beams)


# --- chat ---------------------------------------------------------------------------------------------------


def clear_chat() -> None:
    st.session_state.chat = []


def ask_example(question: str) -> None:
    st.session_state.pending_question = question


def ask(url: str, question: str, options: Options) -> dict:
    """One turn of the conversation: the question and either the answer or the error, as plain data."""
    turn: dict = {"question": question, "keywords": [], "elapsed_s": None, "model": None, "error": None}
    try:
        answer = client.extract(url, question, options)
    except ServiceError as error:
        turn["error"] = error.message
        return turn
    turn.update(
        keywords=answer.keywords,
        elapsed_s=answer.elapsed_s,
        model={"name": answer.model.name, "version": answer.model.version, "alias": answer.model.alias},
    )
    return turn


def show_turn(turn: dict, url: str, number: int) -> None:
    with st.chat_message("user"):
        st.text(turn["question"])
    with st.chat_message("assistant", avatar=":material/key:"):
        if turn["error"]:
            st.error(as_markdown_text(turn["error"]), icon=":material/error:")
            return
        # words, not emoji: emoji render as empty boxes where only a CJK font is installed
        meta = (
            f"<span>answered in {format_duration(turn['elapsed_s'])}</span><span>by {model_html(turn['model'])}</span>"
        )
        st.html(f'{chips_html(turn["keywords"])}<div class="kw-meta">{meta}</div>')
        correction_form(url, turn, key=f"correct_{number}")


def chat_tab(url: str, info: ModelInfo | None, options: Options) -> None:
    st.session_state.setdefault("chat", [])
    turns: list[dict] = st.session_state.chat
    # Slots first, filled after the new question is answered, so that they show the state after it.
    top = st.columns([4, 1], vertical_alignment="center")
    top[0].caption("Ask a question in Korean: its keywords appear as tags, with the time and the model that answered.")
    examples = st.container()
    history = st.container()
    limit = info.max_text_chars if info else None
    prompt = st.chat_input(
        "질문을 입력하세요 — e.g. 여행자 휴대품 면세한도는 얼마인가요?", key="question", max_chars=limit
    )
    question = prompt if prompt is not None else st.session_state.pop("pending_question", None)
    with history:
        for number, turn in enumerate(turns):
            show_turn(turn, url, number)
        if question is not None and not question.strip():
            st.warning("The question is empty: type a question first.", icon=":material/edit:")
        elif question is not None:
            with st.spinner("Extracting keywords…"):
                turn = ask(url, question, options)
            turns.append(turn)
            show_turn(turn, url, len(turns) - 1)
    if not turns:
        with examples, st.container(horizontal=True, key="examples"):
            for number, example in enumerate(EXAMPLES):
                st.button(example, key=f"example_{number}", on_click=ask_example, args=(example,), type="secondary")
    top[1].button(
        "Clear conversation",
        icon=":material/delete:",
        on_click=clear_chat,
        disabled=not turns,
        key="clear_chat",
        width="stretch",
    )


# --- batch --------------------------------------------------------------------------------------------------


def batch_tab(url: str, info: ModelInfo | None, options: Options) -> None:
    """Upload a file of questions, extract their keywords in chunks, show and download the results."""
    st.caption(
        f"Upload a **.txt** file (one question per line) or a **.csv** / **.tsv** file with a header row, "
        f"up to {MAX_QUESTIONS:,} questions and {MAX_FILE_BYTES // 2**20} MB, UTF-8."
    )
    uploaded = st.file_uploader(
        "Questions file",
        type=["txt", "csv", "tsv"],
        key="batch_file",
        max_upload_size=MAX_FILE_BYTES // 2**20,
        label_visibility="collapsed",
    )
    picked = uploaded_questions(uploaded, info) if uploaded is not None else None
    if picked is None:
        return
    questions, column = picked
    run_key = f"{uploaded.file_id}:{column}"
    if st.button("Extract keywords", type="primary", icon=":material/play_arrow:", key="run_batch"):
        run_batch(url, info, options, questions, run_key)
    batch = st.session_state.get("batch")
    if batch and batch["key"] == run_key:
        batch_results(batch, options, uploaded.name.rsplit(".", 1)[0] or "questions")
        batch_corrections(url, batch)


def uploaded_questions(uploaded, info: ModelInfo | None) -> tuple[Questions, str | None] | None:
    """The file's questions and the column they came from; None (after saying why) when they cannot be sent."""
    try:
        questions_file = read_question_file(uploaded.name, uploaded.getvalue())
    except QuestionFileError as error:
        st.error(as_markdown_text(error.message), icon=":material/description:")
        return None
    column = None
    if questions_file.columns:
        default = questions_file.default_column()
        column = st.selectbox(
            "Question column",
            questions_file.columns,
            index=questions_file.columns.index(default) if default else 0,
            key=f"column_{uploaded.file_id}",
        )
    try:
        questions = questions_file.questions(column)
    except QuestionFileError as error:
        st.error(as_markdown_text(error.message), icon=":material/table_rows:")
        return None
    skipped = f" · {questions.blank:,} blank skipped" if questions.blank else ""
    st.caption(f"{len(questions.items):,} questions · {questions_file.encoding}{skipped}")
    if info is None:
        st.warning("The keyword service is not answering: see the message above.", icon=":material/cloud_off:")
        return None
    if message := too_long(questions, info.max_text_chars):
        st.error(as_markdown_text(message), icon=":material/straighten:")
        return None
    return questions, column


def run_batch(url: str, info: ModelInfo, options: Options, questions: Questions, run_key: str) -> None:
    """Send the questions in chunks with a progress bar; the answers go to the session for `batch_results`."""
    total = len(questions.items)
    progress = st.progress(0.0, text=f"0 / {total:,} questions")

    def on_progress(done: int, total: int) -> None:
        progress.progress(done / total, text=f"{done:,} / {total:,} questions")

    chunk_size = max(1, min(client.DEFAULT_CHUNK_SIZE, info.max_batch_texts))
    try:
        result = client.extract_batch(url, questions.texts, options, chunk_size=chunk_size, on_progress=on_progress)
    except ServiceError as error:
        progress.empty()
        st.error(as_markdown_text(error.message), icon=":material/error:")
        return
    progress.progress(1.0, text=f"Done: {total:,} questions in {format_duration(result.elapsed_s)}")
    st.session_state.batch = {
        "key": run_key,
        "questions": questions,
        "keywords": result.keywords,
        "model": result.model,
        "elapsed_s": result.elapsed_s,
    }
    st.session_state.batch_options = options


def batch_results(batch: dict, options: Options, stem: str) -> None:
    """The last run's figures, its table and the two downloads."""
    answered, keywords = batch["questions"], batch["keywords"]
    frame = pd.DataFrame({"line": [q.line for q in answered.items], "question": answered.texts, "keywords": keywords})
    if st.session_state.get("batch_options") != options:
        st.info("The decoding options changed since this run: run it again to apply them.", icon=":material/tune:")
    found = sum(1 for found_keywords in keywords if found_keywords)
    cells = st.columns(4)
    cells[0].metric("Questions", f"{len(frame):,}", border=True)
    cells[1].metric("With keywords", f"{found:,}", border=True)
    cells[2].metric("Time", format_duration(batch["elapsed_s"]), border=True)
    model = batch["model"]
    cells[3].metric(
        "Model", f"v{model.version}", delta=model.alias or None, delta_arrow="off", help=model.label, border=True
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "line": st.column_config.NumberColumn("Line", width="small"),
            "question": st.column_config.TextColumn("Question", width="large"),
            "keywords": st.column_config.ListColumn("Keywords", width="large"),
        },
    )
    buttons = st.container(horizontal=True)
    for label, content, suffix, mime in (
        ("Download CSV", results_csv(answered, keywords), "csv", "text/csv"),
        ("Download JSONL", results_jsonl(answered, keywords), "jsonl", "application/jsonl"),
    ):
        buttons.download_button(
            label,
            content,
            file_name=f"{stem}-keywords.{suffix}",
            mime=mime,
            icon=":material/download:",
            on_click="ignore",
            key=f"download_{suffix}",
        )


def batch_corrections(url: str, batch: dict) -> None:
    """Correct the keywords of any rows in a table and send those rows as corrections for review."""
    answered = [list(found) for found in batch["keywords"]]
    with st.expander("Correct rows and send them for review", icon=":material/edit:"):
        st.caption("Edit the keywords of a row (comma-separated, each written as in the question), then send.")
        table = pd.DataFrame({"question": batch["questions"].texts, "keywords": [", ".join(k) for k in answered]})
        edited = st.data_editor(table, hide_index=True, width="stretch", disabled=["question"], key="batch_corrections")
        if st.button("Send corrected rows", icon=":material/send:", key="send_batch_corrections"):
            corrected = [parse_keywords(cell or "") for cell in edited["keywords"]]
            changed, saved, refused = send_edited_rows(
                url, batch["questions"].texts, answered, corrected, batch["model"].version
            )
            if not changed:
                st.info("No row was changed.", icon=":material/info:")
            else:
                st.success(f"{saved} of {changed} corrected rows saved for review.")
            for reason in refused:
                st.error(as_markdown_text(reason), icon=":material/block:")


# --- page ---------------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="Customs question keywords", page_icon=":material/key:", layout="wide")
    st.html(CSS)
    url, info, problem, options = sidebar()
    st.title(":material/key: Customs question keywords")
    st.caption(
        "KoBART, fine-tuned to pick the knowledge-graph keywords out of Korean questions to the Korea Customs "
        "Service (관세청) chatbot, served with BentoML. Ask one question in Chat, or a whole file in Batch."
    )
    if problem:
        st.error(as_markdown_text(problem), icon=":material/cloud_off:")
    name = reviewer()
    tabs = st.tabs(
        [":material/chat: Chat", ":material/table: Batch", *([":material/rate_review: Review"] if name else [])]
    )
    with tabs[0]:
        chat_tab(url, info, options)
    with tabs[1]:
        batch_tab(url, info, options)
    if name:
        with tabs[2]:
            review_tab(url, name)


main()

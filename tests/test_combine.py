"""Extra training files (accepted corrections): combined with the training file, logged as their own inputs."""

from __future__ import annotations

from mlflow import MlflowClient

from keyword_extractor.data.combine import combine_training_files
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.data.validation import validate
from keyword_extractor.integrations import tracking
from tests.conftest import TEST_TSV


def _tsv(path, rows: list[tuple[str, str]]):
    path.write_text("query\tkeyword\n" + "".join(f"{q}\t{k}\n" for q, k in rows), encoding="utf-8")
    return path


def test_an_extra_file_relabels_questions_and_its_rows_come_first(tmp_path):
    base = _tsv(tmp_path / "train.tsv", [("관세 환급 기한은?", "관세"), ("면세한도는?", "면세한도")])
    corrected = [("관세  환급 기한은?", "관세 환급, 기한"), ("통관 보류 사유는?", "통관 보류")]
    extra = _tsv(tmp_path / "feedback.tsv", corrected)
    before = base.read_bytes()
    combined = combine_training_files(base, [extra], tmp_path / "run" / "train.tsv")
    rows = load_pairs(combined.path)
    assert list(zip(rows["query"], rows["keyword"])) == [
        ("관세  환급 기한은?", "관세 환급, 기한"),  # the correction replaces the bundled row
        ("통관 보류 사유는?", "통관 보류"),  # the extra file's rows first: a limited run still sees them
        ("면세한도는?", "면세한도"),
    ]
    assert (combined.rows, combined.replaced, combined.extra_rows) == (3, 1, 2)
    assert base.read_bytes() == before  # inputs are never modified


def test_an_extra_file_with_a_test_question_fails_validation(tmp_path):
    test = load_pairs(TEST_TSV)
    leak = _tsv(tmp_path / "feedback.tsv", [(test["query"].iloc[0], test["keyword"].iloc[0])])
    report = validate(leak, TEST_TSV, tmp_path / "report")
    assert not report.ok


def test_each_extra_file_is_an_mlflow_input_with_its_digest_and_rows(tmp_path, monkeypatch):
    uri = tracking.sqlite_uri(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.configure()
    base = _tsv(tmp_path / "train.tsv", [("면세한도는?", "면세한도")])
    extra = _tsv(tmp_path / "feedback.tsv", [("통관 보류 사유는?", "통관 보류"), ("관세 환급은?", "관세 환급")])
    run_id = tracking.start_pipeline_run("extra", {})
    digests = tracking.log_datasets(run_id, base, TEST_TSV, [extra])
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "test", "extra:feedback.tsv"}
    assert run.data.tags["data.extra:feedback.tsv.rows"] == "2"
    assert run.data.tags["data.extra:feedback.tsv.sha256"] == digests["extra:feedback.tsv"]
    assert run.data.params["data.extra_train_rows"] == "2"

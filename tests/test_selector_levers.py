"""The lever benchmark's report of several selector seeds: the mean, and the range a lever must clear."""

from __future__ import annotations

import pytest

from benchmarks import selector_levers


def test_one_seed_prints_the_f1_and_its_margin_as_before() -> None:
    assert selector_levers.fold_cell([(0.8, 0.75)]) == "0.8000 (+0.0500)"


def test_several_seeds_print_their_mean_margin_and_range() -> None:
    cell = selector_levers.fold_cell([(0.80, 0.75), (0.78, 0.75), (0.82, 0.75)])
    assert cell == "0.8000 (+0.0500) [0.7800–0.8200]"


def test_no_seed_at_all_is_refused_before_any_fold_is_read(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        selector_levers.main(["--selector-seeds", "0", "--models", str(tmp_path / "absent")])
    assert stopped.value.code == 2
    assert "--selector-seeds must be 1 or more" in capsys.readouterr().err

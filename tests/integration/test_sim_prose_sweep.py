"""The rest of the seed sweep of tests/unit/test_sim_prose.py (seeds 10-199): quoted text never reads as an
answer statement, in every style."""

from __future__ import annotations

import pytest

from reasonmed.sim import styles
from tests.unit.test_parsing import ANTICOAG, PQA
from tests.unit.test_sim_prose import ALL_SEEDS, UNIT_SEEDS, check_refined_paths


@pytest.mark.parametrize("style", styles.STYLES)
@pytest.mark.parametrize("options", [PQA, ANTICOAG], ids=["yes-no-maybe", "lettered"])
def test_a_refined_path_without_its_conclusion_states_no_answer_every_seed(
    options: dict[str, str], style: styles.Style
) -> None:
    check_refined_paths(options, style, range(UNIT_SEEDS.stop, ALL_SEEDS.stop))

"""The rest of the seed sweep of tests/unit/test_sim_styles.py (seeds 2-11): every style reads back the option it
wrote, raw or as the pipeline stores it."""

from __future__ import annotations

from reasonmed.sim import styles
from tests.unit.test_sim_styles import ALL_SEEDS, UNIT_SEEDS, check_read_back, style_cases


@style_cases
def test_every_style_reads_back_the_option_it_wrote_every_seed(
    options: dict[str, str], style: styles.Style, r1: bool, answer_line: bool
) -> None:
    check_read_back(options, style, r1, answer_line, range(UNIT_SEEDS.stop, ALL_SEEDS.stop))

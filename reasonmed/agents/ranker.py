"""Quality ranker: scores a Correct path 0-5 so the best ones are kept (ties keep generation order). A
``None`` score with a successful call means the ranker never produced a parseable score."""

from __future__ import annotations

from reasonmed.agents.base import PathJudge
from reasonmed.parsing import ParsedScore, parse_score

score_path: PathJudge[ParsedScore] = PathJudge("ranker", "rank", parse_score)

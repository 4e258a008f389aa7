"""A run folder written before names were redacted at the source (or by a tool of its own) may hold
secrets in its stat names; the analysis's reports show none of them, the HTML charts' titles,
`aria-label`s and axis labels included."""

from __future__ import annotations

from pathlib import Path

from analysis.__main__ import main
from tests.analysis.runs import Entry, lognormal, simple_run

SECRET = "s3cr3t-0ld-t0ken"


def test_secrets_in_an_older_runs_names_reach_no_report(tmp_path: Path) -> None:
    run = simple_run(
        tmp_path / "run",
        [
            Entry("GET", f"/api/evidence/search?q=audit&token={SECRET}", lognormal(200, 40)),
            Entry("GET", f"/items?api_key={SECRET}&page=1", lognormal(200, 20, seed=2)),
            Entry("POST", f"/api/chat/stream?session={SECRET}", lognormal(50, 900, seed=3), group="ai",
                  ttft=lognormal(50, 120, seed=4), tokens=[40.0] * 50),
        ],
    )  # fmt: skip
    out = tmp_path / "reports"
    assert main([str(run), "--out", str(out), "--no-step-summary"]) in (0, 1)
    reports = {p.name: p.read_text() for p in out.iterdir()}
    assert {p.rsplit(".", 1)[-1] for p in reports} >= {"json", "md", "xml", "html"}
    html = next(text for name, text in reports.items() if name.endswith(".html"))
    assert 'aria-label="GET /api/evidence/search?q=audit&amp;token=&lt;redacted&gt;' in html
    assert [name for name, text in reports.items() if SECRET in text] == []

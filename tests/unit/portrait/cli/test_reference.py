"""The generated reference pages (docs/reference/) match the code that generates them."""

from __future__ import annotations

from portrait.cli import reference
from portrait.cli.app import main


def test_committed_reference_pages_are_current():
    assert reference.stale_pages(main) == [], "run `portrait reference` and commit docs/reference/"


def test_a_page_that_drifted_from_the_code_is_named(tmp_path):
    reference.write_pages(main, tmp_path)
    assert reference.stale_pages(main, tmp_path) == []
    page = tmp_path / "settings.md"
    page.write_text(page.read_text().replace("PORTRAIT_BODY_TIMEOUT_S", "PORTRAIT_BODY_TIMEOUT"))
    (tmp_path / "cli.md").unlink()
    assert reference.stale_pages(main, tmp_path) == ["cli.md", "settings.md"]

"""The CLI's translation of an unmigrated database into one line."""

from __future__ import annotations

import click
import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from portrait.cli._common import PortraitGroup, schema_behind


def _undefined_table() -> sa.exc.ProgrammingError:
    orig = psycopg.errors.UndefinedTable('relation "reviews" does not exist\nLINE 1: SELECT * FROM reviews')
    return sa.exc.ProgrammingError("SELECT * FROM reviews", {}, orig)


def test_a_missing_table_or_column_names_itself_and_the_migration():
    line = schema_behind(_undefined_table())
    assert line == (
        'the database schema is behind this code (relation "reviews" does not exist): run `portrait db migrate`'
    )
    column = sa.exc.ProgrammingError("", {}, psycopg.errors.UndefinedColumn('column "is_placeholder" does not exist'))
    assert 'column "is_placeholder"' in (schema_behind(column) or "")


def test_the_error_is_found_behind_a_wrapper_and_other_errors_pass():
    try:
        try:
            raise _undefined_table()
        except sa.exc.ProgrammingError as err:
            raise RuntimeError("read_sql failed") from err
    except RuntimeError as wrapped:
        assert "portrait db migrate" in (schema_behind(wrapped) or "")
    other = sa.exc.ProgrammingError("", {}, psycopg.errors.SyntaxError("syntax error at or near"))
    assert schema_behind(other) is None
    assert schema_behind(ValueError("x")) is None


@pytest.mark.parametrize("error, code, text", [(_undefined_table(), 1, "run `portrait db migrate`"), (None, 0, "")])
def test_a_command_on_an_unmigrated_database_exits_with_the_line_not_a_traceback(error, code, text):
    @click.group(cls=PortraitGroup)
    def app():
        pass

    @app.command()
    def read():
        if error is not None:
            raise error

    result = CliRunner().invoke(app, ["read"])
    assert result.exit_code == code
    assert text in result.output and "Traceback" not in result.output

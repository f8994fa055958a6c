"""Review length in the unit each language has: `review_length_mean` (characters
of every review) becomes `review_words_mean` (reviews in space-separated
languages) and `review_chars_mean_zh` (Chinese reviews), backfilled for every
existing snapshot from the raw reviews, the way the feature build computes them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Each snapshot's means over the user's reviews up to its time (the build's definition:
# portrait.features.build.REVIEW_LENGTHS_SQL, copied here as migrations are frozen).
BACKFILL = r"""
UPDATE user_behavior b SET review_words_mean = s.words, review_chars_mean_zh = s.chars
FROM (
    SELECT b2.user_id, b2.event_timestamp,
           avg(regexp_count(r.text, '\S+')) FILTER (WHERE r.language IS DISTINCT FROM 'zh') AS words,
           avg(char_length(r.text)) FILTER (WHERE r.language = 'zh') AS chars
    FROM user_behavior b2 JOIN reviews r ON r.user_id = b2.user_id AND r.event_timestamp <= b2.event_timestamp
    GROUP BY b2.user_id, b2.event_timestamp
) s
WHERE b.user_id = s.user_id AND b.event_timestamp = s.event_timestamp
"""


def upgrade() -> None:
    op.add_column("user_behavior", sa.Column("review_words_mean", sa.REAL, comment="mean words per review (space-separated languages)"))
    op.add_column("user_behavior", sa.Column("review_chars_mean_zh", sa.REAL, comment="mean characters per Chinese review"))
    op.execute(BACKFILL)
    op.drop_column("user_behavior", "review_length_mean")


def downgrade() -> None:
    op.add_column("user_behavior", sa.Column("review_length_mean", sa.REAL))
    op.execute("""
    UPDATE user_behavior b SET review_length_mean = s.chars
    FROM (SELECT b2.user_id, b2.event_timestamp, avg(length(r.text)) AS chars
          FROM user_behavior b2 JOIN reviews r ON r.user_id = b2.user_id AND r.event_timestamp <= b2.event_timestamp
          GROUP BY b2.user_id, b2.event_timestamp) s
    WHERE b.user_id = s.user_id AND b.event_timestamp = s.event_timestamp""")
    op.drop_column("user_behavior", "review_chars_mean_zh")
    op.drop_column("user_behavior", "review_words_mean")

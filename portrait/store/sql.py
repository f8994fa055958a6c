"""SQL helpers for the feature jobs: frames from queries, COPY of snapshot rows, real[] literals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa


def frame(conn, sql: str, **params) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def utc_times(df: pd.DataFrame) -> pd.DataFrame:
    if "event_timestamp" in df:
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    return df


def replace_snapshots(conn, table: str, key: str, entities: Sequence[str], frame: pd.DataFrame, as_of: datetime) -> int:
    """Delete the entities' snapshots up to as_of and COPY the recomputed ones in."""
    conn.execute(
        sa.text(f"DELETE FROM {table} WHERE {key} = ANY(:ids) AND event_timestamp <= :as_of"),
        {"ids": entities, "as_of": as_of},
    )
    if frame.empty:
        return 0
    columns = list(frame.columns)
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in frame.itertuples(index=False, name=None):
            copy.write_row([_sql_value(v) for v in row])
    return len(frame)


def pg_array(vector: np.ndarray) -> str:
    """A real[] literal for text COPY: several times faster than letting psycopg
    adapt a list of floats element by element."""
    return "{" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "}"


def _sql_value(value):
    if value is pd.NA:
        return None
    if isinstance(value, np.ndarray):
        return pg_array(value)
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value

"""How serving maps failures: outages by exception type (whatever the message),
a missing champion is a 503 naming the model."""

import httpx
import psycopg
import pytest
import redis
from bentoml.exceptions import InvalidArgument, ServiceUnavailable

from serving.champions import ChampionModel
from serving.errors import is_outage


@pytest.mark.parametrize(
    "err",
    [
        psycopg.OperationalError("server closed the connection"),
        redis.exceptions.ConnectionError("Error 111"),
        httpx.ConnectError("refused"),
        ServiceUnavailable("sentiment model unavailable"),
        ConnectionResetError(),
    ],
)
def test_outages_are_recognised_by_type(err):
    assert is_outage(err)


def test_an_outage_behind_another_exception_is_found_and_words_alone_are_not_one():
    try:
        try:
            raise redis.exceptions.TimeoutError("timed out")
        except redis.exceptions.TimeoutError as inner:
            raise RuntimeError("feast failed") from inner
    except RuntimeError as outer:
        assert is_outage(outer)
    assert not is_outage(ValueError("connection refused"))  # a message that merely says so
    assert not is_outage(InvalidArgument("bad"))


def test_a_missing_champion_is_a_503_naming_the_model():
    with pytest.raises(ServiceUnavailable, match="rating-predictor@champion is not available"):
        ChampionModel("rating-predictor").get()


def test_a_closed_keep_alive_connection_is_retried_and_a_dead_worker_is_an_outage():
    import aiohttp

    from serving.errors import is_outage, is_stale_connection

    try:
        try:
            raise aiohttp.ServerDisconnectedError()
        except aiohttp.ServerDisconnectedError as inner:
            raise RuntimeError("proxy call failed") from inner
    except RuntimeError as err:
        assert is_stale_connection(err) and is_outage(err)
    assert not is_stale_connection(ValueError("bad input"))


def test_a_write_on_a_closed_connection_is_retried_too():
    import aiohttp

    from serving.errors import is_stale_connection

    assert is_stale_connection(aiohttp.ClientOSError(None, "Can not write request body"))


@pytest.mark.parametrize(
    ("reason", "hidden"),
    [
        (
            "feature store unavailable: OperationalError: connection failed: connection to server on socket "
            '"/srv/shop/.portrait/run/.s.PGSQL.5432" failed: No such file or directory',
            "/srv/shop",
        ),
        ('OperationalError: connection to server at "10.1.2.3", port 6543 failed: Connection refused', "10.1.2.3"),
        ("ConnectionError: Error 111 connecting to 192.168.7.7:6380. Connection refused.", "192.168.7.7"),
        ("OSError: [Errno 2] No such file or directory: '/home/shop/state/bentoml/x.sock'", "/home/shop"),
    ],
)
def test_a_503_says_what_is_down_not_where(reason, hidden):
    from serving.errors import down

    said = str(down(reason))
    assert hidden not in said and "6543" not in said
    assert said.split(":")[0] == reason.split(":")[0]  # what is down stays

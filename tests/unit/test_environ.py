"""What a gateway keeps of a client's handshake environ once its namespace is connected."""

from __future__ import annotations

from services.realtime_service.app import lasting_environ


def test_only_the_lasting_keys_are_kept_and_the_credentials_are_dropped() -> None:
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_FORWARDED_FOR": "203.0.113.7",
        "HTTP_USER_AGENT": "Mozilla/5.0",
        "PATH_INFO": "/socket.io/",
        "QUERY_STRING": "EIO=4&transport=websocket&token=secret",
        "HTTP_AUTHORIZATION": "Bearer secret",
        "HTTP_COOKIE": "a=b",
        "aiohttp.request": object(),
        "wsgi.input": object(),
    }
    assert lasting_environ(environ) == {
        "HTTP_X_FORWARDED_FOR": "203.0.113.7",
        "HTTP_USER_AGENT": "Mozilla/5.0",
    }


def test_missing_keys_are_left_out() -> None:
    assert lasting_environ({"QUERY_STRING": "EIO=4"}) == {}

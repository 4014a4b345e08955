"""daemon.config.http_listener: the [http] table."""

import pytest

from daemon.config import HttpSettings


@pytest.mark.parametrize(("bind", "host", "port"), [
    ("127.0.0.1:0", "127.0.0.1", 0), ("[::1]:8025", "::1", 8025), ("0.0.0.0:80", "0.0.0.0", 80),
])
def test_http_bind_forms(bind, host, port):
    http = HttpSettings(bind=bind)
    assert (http.host, http.port) == (host, port)

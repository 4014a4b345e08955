"""The one translation boundary every adapter uses (daemon.errors.translated)."""

import pytest

from daemon.errors import AuthError, ConnectError, PostroomError, translated


def translate(exc: Exception) -> PostroomError | None:
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError("127.0.0.1:993: connection refused")
    if isinstance(exc, PermissionError):
        return AuthError("login refused")
    return None


def test_mapped_errors_keep_their_cause():
    with pytest.raises(ConnectError) as info, translated(translate):
        raise ConnectionRefusedError(111, "refused")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_unmapped_and_postroom_errors_pass_through():
    with pytest.raises(KeyError), translated(translate):
        raise KeyError("x")
    error = AuthError("already ours")
    with pytest.raises(AuthError) as info, translated(translate):
        raise error
    assert info.value is error


def test_without_chain_the_cause_and_its_frames_are_gone():
    def login(password: str) -> None:
        raise PermissionError(f"refused for {password}")

    with pytest.raises(AuthError) as info, translated(translate, chain=False):
        login("hunter2")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True
    context = info.value.__context__
    assert context is not None and context.__traceback__ is None  # no frame holds it

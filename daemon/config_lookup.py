"""Which configuration file a command uses: one lookup for every ``postroom`` command.

In order: ``--config FILE``, then ``$POSTROOM_CONFIG``, then ``./postroom.toml``, then
``/etc/postroom/postroom.toml``. The first one given (the option or the variable) is used
even if it does not exist, so a typo is an error rather than a silent fall-through to
another file; only the two default places are probed. When none is found, the error says
how to pass one.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PLACES", "NoConfigError", "locate_config"]

from collections.abc import Mapping, Sequence
from pathlib import Path

from daemon.errors import PostroomError

#: Looked at, in order, when neither ``--config`` nor ``$POSTROOM_CONFIG`` is set.
DEFAULT_PLACES: tuple[Path, ...] = (Path("postroom.toml"), Path("/etc/postroom/postroom.toml"))


class NoConfigError(PostroomError):
    """No configuration file was given and none is in the default places."""

    def __init__(self, looked_at: Sequence[Path]) -> None:
        self.looked_at = tuple(looked_at)
        places = ", ".join(str(p) for p in self.looked_at)
        super().__init__(f"no configuration file: looked at {places}; pass one with "
                         "--config FILE or set POSTROOM_CONFIG=FILE")


def locate_config(given: Path | None, environ: Mapping[str, str],
                  places: Sequence[Path] = DEFAULT_PLACES) -> Path:
    """The configuration file to use (see the module docstring).

    Raises:
        NoConfigError: nothing given and no file in ``places``.
    """
    if given is not None:
        return given
    from_env = environ.get("POSTROOM_CONFIG", "")
    if from_env:
        return Path(from_env)
    for place in places:
        if place.is_file():
            return place
    raise NoConfigError(places)

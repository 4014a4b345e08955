from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from daemon.config.problems import (
    config_keys,
    fail_at,
    format_path,
    problems_from_validation_error,
    suggest,
)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    port: int = 1

    @model_validator(mode="after")
    def _check(self) -> "Inner":
        if self.name == "bad":
            fail_at("Inner", (("name",), "is bad"), (("port",), "is bad too"))
        return self


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: tuple[Inner, ...] = ()
    one: Inner | None = None


@pytest.mark.parametrize(("loc", "path"), [
    ((), ""),
    (("daemon",), "daemon"),
    (("accounts", 2, "auth"), "accounts[2].auth"),
    (("a", 0, 1, "b"), "a[0][1].b"),
])
def test_format_path(loc, path):
    assert format_path(loc) == path


def test_suggest_only_when_close():
    assert suggest("pasword", ["password_env", "folder"]) == " (did you mean 'password_env'?)"
    assert suggest("xyz", ["password_env", "folder"]) == ""


def test_config_keys_prefers_aliases_and_skips_resolved_secrets():
    class WithSecret(BaseModel):
        resolved_secrets: ClassVar[tuple[str, ...]] = ("password",)
        password_env: str | None = None
        password: str | None = None

    assert config_keys(WithSecret) == ("password_env",)
    assert config_keys(Outer) == ("items", "one")


def test_errors_become_paths_with_hints_and_no_input():
    with pytest.raises(ValidationError) as info:
        Outer.model_validate({"items": [{"name": "ok", "prot": 2},
                                        {"name": "bad"},
                                        {"port": "s3cret"}],
                              "one": 5})
    found = [str(p) for p in problems_from_validation_error(
        info.value, file="f.toml", model=Outer, prefix=("top", 1))]
    assert found == [
        "f.toml: top[1].items[0].prot: unknown key (did you mean 'port'?)",
        "f.toml: top[1].items[1].name: is bad",
        "f.toml: top[1].items[1].port: is bad too",
        "f.toml: top[1].items[2].name: required key missing",
        "f.toml: top[1].items[2].port: must be a valid integer, unable to parse string as an "
        "integer",
        "f.toml: top[1].one: must be a table",
    ]
    assert "s3cret" not in "".join(found)


def test_json_flavour_says_object():
    with pytest.raises(ValidationError) as info:
        Outer.model_validate({"one": [], "items": 3})
    found = [p.reason for p in problems_from_validation_error(
        info.value, file="r.json", model=Outer, flavour="json")]
    assert found == ["must be an array", "must be an object"]

"""``postroom init``, ``postroom files`` and ``postroom --version``."""

from __future__ import annotations

import io
import stat
from importlib.metadata import version
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import check_config
from daemon.shipped import SHIPPED, shipped_file


def test_init_writes_a_starter_that_passes_check_config(tmp_path, capsys):
    target = tmp_path / "x"
    assert main(["init", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == [
        "Maildir", "postroom.toml", "runtime.json", "secret-key"]
    key = target / "secret-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_text().strip()) >= 32
    out = io.StringIO()
    assert check_config(target / "postroom.toml", environ={}, out=out) == 0
    assert out.getvalue().startswith(f"OK: {target / 'postroom.toml'} (1 account")
    assert "warning" not in out.getvalue()  # the runtime JSON serves the starter account
    assert capsys.readouterr().out.endswith(
        f"next: postroom check-config {target / 'postroom.toml'}\n")


def test_two_inits_make_two_different_keys(tmp_path):
    assert main(["init", str(tmp_path / "a")]) == main(["init", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "secret-key").read_text() != \
        (tmp_path / "b" / "secret-key").read_text()


def test_init_never_overwrites(tmp_path, capsys):
    (tmp_path / "postroom.toml").write_text("# mine\n")
    assert main(["init", str(tmp_path)]) == 1
    assert "postroom.toml" in capsys.readouterr().err
    assert (tmp_path / "postroom.toml").read_text() == "# mine\n"
    assert not (tmp_path / "secret-key").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"postroom {version('postroom')}\n"


def test_files_lists_every_shipped_file(capsys):
    assert main(["files"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == list(SHIPPED.values())
    for name in SHIPPED:
        assert shipped_file(name).is_file()


def test_files_prints_one_path(capsys):
    assert main(["files", "service/systemd/postroom.service"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("postroom.service")
    assert "Type=notify" in Path(path).read_text()
    assert main(["files", "nope"]) == 1

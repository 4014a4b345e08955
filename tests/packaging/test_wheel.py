"""The built wheel, installed into a fresh virtualenv: complete, and ready to run.

The wheel is built from a copy of this checkout (``pip wheel --no-deps``) and installed
with ``--no-deps --no-index`` into a new virtualenv; its dependencies come from this
environment's site-packages (which setup.sh installed from requirements.lock) through a
``.pth`` file, so the test needs no index and no network beyond the build backend. The
import check proves the new environment runs the wheel's code, not this checkout's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from daemon.shipped import SHIPPED

REPO = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "var", "*.egg-info",
                                "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache",
                                ".hypothesis", "demo-run")

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            cwd=cwd, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=IGNORE)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root / "dist", source)
    (built,) = (root / "dist").glob("postroom-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", env)
    python = env / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
                    ).strip())
    (site / "postroom-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def test_the_wheel_carries_license_examples_templates_and_service_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names)
    missing = [name for name in SHIPPED if f"daemon/share/{name}" not in names]
    assert missing == []
    assert "daemon/templates/default.html" in names
    with zipfile.ZipFile(wheel) as z:
        shipped = z.read("daemon/share/service/systemd/postroom.service")
    assert shipped == (REPO / "service" / "systemd" / "postroom.service").read_bytes()


def test_a_fresh_install_inits_a_config_that_checks_ok(venv, tmp_path):
    bin_dir = venv / "bin"
    # Run outside the checkout: `python -c` puts the working directory on sys.path.
    where = run(bin_dir / "python", "-c", "import daemon; print(daemon.__file__)", cwd=tmp_path)
    assert where.startswith(str(venv)), where
    assert run(bin_dir / "postroom", "--version", cwd=tmp_path).startswith("postroom ")
    run(bin_dir / "postroom", "init", tmp_path / "x", cwd=tmp_path)
    out = run(bin_dir / "postroom", "check-config", tmp_path / "x" / "postroom.toml",
              cwd=tmp_path)
    assert out.startswith(f"OK: {tmp_path / 'x' / 'postroom.toml'} (1 account")
    unit = run(bin_dir / "postroom", "files", "service/systemd/postroom.service",
               cwd=tmp_path).strip()
    assert unit.startswith(str(venv)) and Path(unit).is_file()

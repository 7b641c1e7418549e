"""The Makefile's set-up: `make run` installs only what serving needs and says what it
does, `make test` adds the development tools, and stamps skip work already done.

Each case runs ``make --dry-run`` on a copy of the Makefile and pyproject.toml, so
nothing is installed; the real bootstrap is run by hand from a fresh clone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAMPS = (".created-stamp", ".server-stamp", ".dev-stamp")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    os.utime(tmp_path / "pyproject.toml", (1_000, 1_000))
    return tmp_path


def planned(project: Path, target: str) -> list[str]:
    """The commands ``make TARGET`` would run, one per line."""
    done = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "-C", str(project), target],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def installs(commands: list[str]) -> list[str]:
    return [c for c in commands if "pip install" in c]


def stamp(project: Path, *names: str, when: float = 2_000) -> None:
    """Mark set-up steps as done at ``when`` (after pyproject.toml was written)."""
    (project / ".venv").mkdir(exist_ok=True)
    for name in names:
        path = project / ".venv" / name
        path.touch()
        os.utime(path, (when, when))


def test_run_installs_only_the_server_extra_and_says_so(project: Path) -> None:
    commands = planned(project, "run")
    assert [c.split("-e ")[-1] for c in installs(commands)] == ["'.[server]'"]
    assert not any("--quiet" in c or " -q" in c for c in installs(commands))
    said = [c for c in commands if c.startswith("echo ")]
    assert len(said) >= 3 and any("serve" in line for line in said)
    assert commands[-1].endswith("convstore serve --demo-user")


def test_test_installs_the_dev_tools_on_top(project: Path) -> None:
    stamp(project, ".created-stamp", ".server-stamp")
    commands = planned(project, "test")
    assert [c.split("-e ")[-1] for c in installs(commands)] == ["'.[dev]'"]
    assert any("ruff check" in c for c in commands) and any("mypy" in c for c in commands)
    assert any("pytest --cov" in c for c in commands)


def test_nothing_is_installed_again_until_pyproject_changes(project: Path) -> None:
    stamp(project, *STAMPS)
    assert installs(planned(project, "run")) == []
    assert installs(planned(project, "test")) == []
    os.utime(project / "pyproject.toml", (3_000, 3_000))
    assert len(installs(planned(project, "run"))) == 1
    assert len(installs(planned(project, "test"))) == 2

"""Setup: what counts as missing, and the exact commands printed where `up` cannot install."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack_cli import tools


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tools, "find", lambda _name, _path_first=True: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no FerretDB built in this cache


@pytest.mark.usefixtures("nothing_installed")
def test_everything_missing_is_listed_per_service() -> None:
    missing = tools.missing_for(["postgres", "redis", "mongodb"])
    assert [(m.service, m.what) for m in missing] == [
        ("postgres", "postgres"),
        ("postgres", "initdb"),
        ("redis", "redis-server"),
        ("redis", "redis-cli"),
        ("mongodb", f"ferretdb {tools.FERRETDB_VERSION}"),
    ]


@pytest.mark.usefixtures("nothing_installed")
def test_install_commands_for_debian_and_macos() -> None:
    lines = tools.install_commands(tools.missing_for(["postgres", "pgbouncer", "mongodb"]))
    assert lines[0] == (
        "Debian/Ubuntu: sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y pgbouncer postgresql-15"
    )
    assert lines[1] == "macOS: brew install pgbouncer postgresql@15"
    assert "FerretDB v1.24.2" in lines[2]
    assert "builds FerretDB itself" in lines[2]


def test_ferretdb_is_cached_per_user_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tools.ferretdb_binary() == tmp_path / "devstack" / "ferretdb" / "v1.24.2" / "ferretdb"
    assert tools.missing_for(["mongodb"])
    tools.ferretdb_binary().parent.mkdir(parents=True)
    tools.ferretdb_binary().touch()
    assert tools.missing_for(["mongodb"]) == []


@pytest.mark.usefixtures("nothing_installed")
def test_a_missing_program_says_how_to_get_it() -> None:
    with pytest.raises(FileNotFoundError, match="run `devstack doctor`"):
        tools.require("pgbouncer")

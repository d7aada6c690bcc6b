"""Each API's own environment (devstack_cli.appenv): where it lives, and a failure that says where
to look. Syncing a real one is proven by every `devstack up` of the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack_cli import appenv
from devstack_cli.settings import Settings


def test_each_app_has_an_environment_in_the_state_folder(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert appenv.environment_dir(settings, "code_first") == tmp_path / "envs" / "code_first"
    assert appenv.python(settings, "api_first") == tmp_path / "envs/api_first/bin/python"
    assert appenv.project_name("code_first") == "code-first"


def test_an_app_runs_optimized_from_its_environment(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert appenv.command(settings, "code_first") == [
        str(tmp_path / "envs/code_first/bin/python"),
        "-OO",
        "-X",
        "no_debug_ranges",
        "-m",
        "code_first",
    ]


def test_an_unknown_package_fails_naming_the_log(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    log = tmp_path / "logs" / "setup.log"
    with pytest.raises(
        RuntimeError, match=f"could not prepare the no_such_app environment; see {log}"
    ):
        appenv.sync(settings, "no_such_app", log)
    assert "no-such-app" in log.read_text()
    assert not appenv.python(settings, "no_such_app").exists()


def test_an_unchanged_environment_is_not_synced_again(tmp_path: Path) -> None:
    """The stamp holds the digest of what the environment is made from: while it matches, `sync`
    runs nothing (not even uv); a changed input makes it sync again."""
    settings = Settings(state_dir=tmp_path)
    python = appenv.python(settings, "no_such_app")
    python.parent.mkdir(parents=True)
    python.touch()
    stamp = appenv.environment_dir(settings, "no_such_app") / ".devstack-synced"
    stamp.write_text(appenv.inputs_digest())
    log = tmp_path / "setup.log"
    assert appenv.sync(settings, "no_such_app", log) == python  # would fail if uv ran
    assert not log.exists()
    stamp.write_text("an older digest")
    with pytest.raises(RuntimeError, match="could not prepare the no_such_app environment"):
        appenv.sync(settings, "no_such_app", log)

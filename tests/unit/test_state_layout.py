"""The state folder's layout (CA chain, AppRole files) as the CLI writes it is where the library
reads it: the library cannot import the CLI, so this test holds the two definitions together."""

from __future__ import annotations

from pathlib import Path

from devstack_cli.settings import StatePaths
from devstack_client import ClientSettings


def test_the_library_reads_the_ca_chain_and_approle_files_where_the_cli_writes_them(
    tmp_path: Path,
) -> None:
    state = StatePaths(tmp_path)
    for path, text in (
        (state.role_id_file("code_first"), "role-of-code-first\n"),
        (state.secret_id_file("code_first"), "secret-of-code-first\n"),
        (state.ca_chain, "-----BEGIN CERTIFICATE-----\n"),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    settings = ClientSettings.for_stack(tmp_path, approle="code_first")
    assert settings.resolved_ca_file == state.ca_chain
    assert settings.read_role_id() == "role-of-code-first"
    assert settings.read_secret_id() == "secret-of-code-first"

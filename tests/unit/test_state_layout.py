"""The state folder's layout is the CLI's (`devstack_cli.settings.StatePaths`); the client finds
a stack's CA chain and AppRole files there by itself when given only the folder
(`ClientSettings.for_stack`, used outside the stack: tests, a developer's script). The client
cannot import the CLI (nor the CLI's light paths the client's drivers), so this test holds the
client's two fallbacks to the CLI's layout instead. Apps started by `devstack up` get each file's
path explicitly (DEVSTACK_CA_FILE, DEVSTACK_VAULT_ROLE_ID_FILE, ..._SECRET_ID_FILE)."""

from __future__ import annotations

from pathlib import Path

from devstack_cli.settings import Settings, write_private
from devstack_client.settings import ClientSettings


def test_the_client_reads_what_the_cli_writes_where_the_cli_writes_it(tmp_path: Path) -> None:
    paths = Settings(state_dir=tmp_path, port_offset=0).state
    write_private(paths.role_id_file("code_first"), "the-role-id")
    write_private(paths.secret_id_file("code_first"), "the-secret-id")
    client = ClientSettings.for_stack(tmp_path, approle="code_first")
    assert client.resolved_ca_file == paths.ca_chain
    assert client.read_role_id() == "the-role-id"
    assert client.read_secret_id() == "the-secret-id"

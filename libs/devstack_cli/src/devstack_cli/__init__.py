"""The `devstack` command."""

"""Programs built from a Go module (FerretDB, VictoriaLogs): one build helper, one cache layout."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack_cli import tools
from devstack_cli.servers import victorialogs

# A stand-in for `go`: `mod download -json` names a module folder (read-only files, as Go's
# module cache has them); `build -o OUT PKG` writes OUT with the package and version.txt in it.
FAKE_GO = """#!/bin/sh
if [ "$1" = mod ]; then
  printf '{"Dir": "%s"}' "$FAKE_MODULE_DIR"
  exit 0
fi
out="$4"; pkg="$5"
[ "$pkg" = ./broken ] && { echo "compile error" >&2; exit 1; }
{ echo "$pkg"; cat build/version/version.txt 2>/dev/null || true; } > "$out"
"""


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(FAKE_GO)
    go.chmod(0o755)
    module = tmp_path / "module"
    (module / "build" / "version").mkdir(parents=True)
    (module / "go.mod").write_text("module example\n")
    for path in (module / "go.mod", module / "build" / "version", module / "build", module):
        path.chmod(stat.S_IREAD | stat.S_IEXEC | (stat.S_IXUSR if path.is_dir() else 0))
    monkeypatch.setenv("FAKE_MODULE_DIR", str(module))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield tmp_path
    for path in (module, module / "build", module / "build" / "version"):
        path.chmod(0o755)


def test_the_cache_layout_is_the_one_existing_caches_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "devstack"
    assert tools.ferretdb_binary() == cache / "ferretdb" / tools.FERRETDB_VERSION / "ferretdb"
    for name in ("victoria-logs", "vlagent"):
        assert victorialogs.binary(name) == cache / "victorialogs" / victorialogs.VERSION / name


def test_ferretdb_is_built_with_its_version_file(fake_go: Path) -> None:
    log = fake_go / "setup.log"
    binary = tools.build_ferretdb(log)
    assert binary == tools.ferretdb_binary()
    assert binary.read_text().split() == ["./cmd/ferretdb", tools.FERRETDB_VERSION]


def test_only_the_missing_programs_are_built(fake_go: Path) -> None:
    victorialogs.binary("vlagent").parent.mkdir(parents=True)
    victorialogs.binary("vlagent").write_text("kept")
    assert victorialogs.GO_MODULE.missing() == ["victoria-logs"]
    victorialogs.build(fake_go / "setup.log")
    assert victorialogs.binary("vlagent").read_text() == "kept"
    assert victorialogs.binary("victoria-logs").read_text().split() == ["./app/victoria-logs"]
    assert victorialogs.GO_MODULE.missing() == []


def test_a_failed_build_leaves_no_program_and_points_at_the_log(fake_go: Path) -> None:
    spec = tools.GoModule("example", "v1.0.0", "example", {"tool": "./broken"}, "Example")
    log = fake_go / "setup.log"
    with pytest.raises(RuntimeError, match=f"building tool v1.0.0 failed; see {log}"):
        tools.build_go_module(spec, log)
    assert not spec.binary("tool").exists()
    assert "compile error" in log.read_text()


def test_without_go_the_error_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"Go is needed to build FerretDB v.*go\.dev"):
        tools.build_ferretdb(tmp_path / "setup.log")

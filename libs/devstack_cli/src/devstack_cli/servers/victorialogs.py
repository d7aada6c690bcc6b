"""VictoriaLogs (Apache-2.0): the log store, with its web UI (vmui) and LogsQL.

Built from its Go module (`github.com/VictoriaMetrics/VictoriaLogs`, the version below) into the
per-user cache, like FerretDB: `victoria-logs` (this service) and `vlagent` (the shipper, see
`servers/vlagent.py`). One process on 127.0.0.1, plain HTTP like the other local web UIs; its
data in the state folder, kept for `RETENTION`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.settings import cache_dir

MODULE = "github.com/VictoriaMetrics/VictoriaLogs"
VERSION = "v1.52.1"
PROGRAMS = {"victoria-logs": "./app/victoria-logs", "vlagent": "./app/vlagent"}
RETENTION = "7d"


def binary(name: str) -> Path:
    return cache_dir() / "victorialogs" / VERSION / name


def build(log: Path) -> None:
    """Build whichever of `victoria-logs` and `vlagent` is missing (a few minutes on 2 cores
    the first time; the Go build cache makes a second build quick)."""
    missing = [name for name in PROGRAMS if not binary(name).exists()]
    if not missing:
        return
    go = shutil.which("go")
    if go is None:
        raise FileNotFoundError(f"Go is needed to build VictoriaLogs {VERSION}: see docs/client.md")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out, tempfile.TemporaryDirectory() as tmp:
        download = subprocess.run(
            [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            capture_output=True,
            env=env,
            cwd=tmp,
        )
        out.write(download.stderr)
        if download.returncode:
            raise RuntimeError(f"downloading {MODULE}@{VERSION} failed; see {log}")
        source = Path(tmp) / "src"
        shutil.copytree(json.loads(download.stdout)["Dir"], source)
        for path in source.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        for name in missing:
            target = binary(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{name}.partial")
            print(f"building {name} {VERSION} into {target.parent}", flush=True)
            result = subprocess.run(
                [go, "build", "-trimpath", "-o", str(partial), PROGRAMS[name]],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=source,
            )
            if result.returncode:
                raise RuntimeError(f"building {name} failed; see {log}")
            partial.replace(target)


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    probe = Probe(http=f"http://127.0.0.1:{ctx.port('http')}/health")
    return [ctx.process("victorialogs", probe, ctx.after())]


def launch(ctx: Launch) -> Exec:
    build(ctx.settings.state.logs / "setup.log")
    return Exec(
        [
            str(binary("victoria-logs")),
            f"-httpListenAddr=127.0.0.1:{ctx.port('http')}",
            f"-storageDataPath={ctx.dir / 'data'}",
            f"-retentionPeriod={RETENTION}",
            "-loggerFormat=json",
            "-loggerOutput=stdout",
        ]
    )

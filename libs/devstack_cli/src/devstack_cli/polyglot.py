"""The reference APIs in other languages (`polyglot/`): how each is built, run and checked.

Each implementation of the contract outside Python has a recipe here, keyed by its service name
in the table. `up` builds it once per change of its inputs: the input files (and the recipe
itself) are hashed into a key, and the result goes to `~/.cache/devstack/polyglot/<name>/<key>/`,
outside the checkout, so a fresh clone on the same machine (CI's included) finds what an
earlier one built. The path of the build in use is recorded in the state folder, and the
launcher (`servers/api.py`) execs the recipe's command from it: a restart by the supervisor runs
the same build even if the source changed since; the next `up` rebuilds.

`./devstack test` runs each recipe's checks (format, vet/lint, the language's own unit tests) in
its source folder, or, for a `mirrored` recipe, in its mirror: a copy of the folder in the cache
where the recipe's builds run too (`in_mirror`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from devstack_cli.settings import Settings, cache_dir, repo_root

BUILT_MARKER = ".built"


@dataclass(frozen=True)
class Check:
    """A command `devstack test` runs in the source folder (or the mirror); `silent`: any output
    is a failure (`gofmt -l` lists the files it would change and exits 0).

    `prepare`, for a check that runs tests: the command that compiles them without running them.
    `devstack test` runs it beside pytest, at the lowest CPU priority, and the check itself once
    pytest is done, so that no test that times its own work runs starved of the CPU.
    """

    argv: tuple[str, ...]
    silent: bool = False
    prepare: tuple[str, ...] | None = None


# Which of a recipe's checks a run takes: every one in order ("all"); what can run beside other
# work ("beside": each check without `prepare`, and the `prepare` of the others); or the checks
# with `prepare` ("after").
Stage = Literal["all", "beside", "after"]


@dataclass(frozen=True)
class Toolchain:
    program: str  # what must be on PATH
    install: str  # how to get it, one line
    version_argv: tuple[str, ...] = ()  # prints the version (doctor shows it)
    minimum: tuple[int, ...] = ()  # the version must be at least this (major, minor, ...)


@dataclass(frozen=True)
class Recipe:
    """How one implementation is built, run and checked.

    In every command, `{out}` is the build's output folder and `{cache}` the devstack cache
    folder. `copy_inputs`: the inputs are copied into `{out}` and the build runs there (a Node
    package installs its node_modules beside its compiled code); otherwise the build runs in the
    source folder and writes its result into `{out}`. `mirrored`: the builds and the checks run
    in the recipe's mirror (`in_mirror`) instead of the source folder; `check_inputs` are the
    files the checks read beyond the inputs (a mirror holds both).
    """

    name: str
    folder: str  # under the repository root
    toolchains: tuple[Toolchain, ...]
    inputs: tuple[str, ...]  # glob patterns, relative to the folder
    build: tuple[tuple[str, ...], ...]
    run: tuple[str, ...]
    checks: tuple[Check, ...]
    copy_inputs: bool = False
    mirrored: bool = False
    check_inputs: tuple[str, ...] = ()  # glob patterns, relative to the folder
    env: dict[str, str] = field(default_factory=dict)  # for builds and checks
    run_env: dict[str, str] = field(default_factory=dict)  # for the running API

    @property
    def source(self) -> Path:
        return repo_root() / self.folder

    def exists(self) -> bool:
        """False until the implementation's source is in the checkout."""
        return self.source.is_dir() and any(self.source.glob(self.inputs[0]))


GO = Toolchain(
    "go",
    "install Go 1.26 or newer (Debian: the official Go tarball; macOS: brew install go)",
    ("go", "version"),
    minimum=(1, 26),
)
NODE = Toolchain(
    "node",
    "install Node.js 20.19 or newer with npm (the MongoDB driver needs it; Debian: apt-get install "
    "nodejs npm, if it is that recent; macOS: brew install node@20)",
    ("node", "--version"),
    minimum=(20, 19),
)
NPM = Toolchain("npm", "npm comes with Node.js (Debian: apt-get install npm)", ("npm", "--version"))
CARGO = Toolchain(
    "cargo",
    "install Rust with rustup, then `rustup default stable` (macOS: brew install rustup)",
    ("cargo", "--version"),
)

RUST_TARGET = "{cache}/rust/target"  # kept across clones: CI does not rebuild every crate

# How the Go API is built: a static binary (no libc mapped) without gin's msgpack codec (3 MB of
# code it would map but never run): docs/polyglot/golang.md, memory. `go vet` takes the same
# flags, so the packages it compiles are the build's own (Go's cache shares them).
GO_STATIC = ("env", "CGO_ENABLED=0")
GO_FLAGS = ("-trimpath", "-tags", "nomsgpack")

RECIPES: dict[str, Recipe] = {
    "golang": Recipe(
        name="golang",
        folder="polyglot/golang",
        toolchains=(GO,),
        inputs=("go.mod", "go.sum", "**/*.go"),
        build=(
            (
                *GO_STATIC,
                "go",
                "build",
                *GO_FLAGS,
                "-o",
                "{out}/devstack-api",
                "./cmd/devstack-api",
            ),
        ),
        run=("{out}/devstack-api",),
        checks=(
            Check(("gofmt", "-l", "."), silent=True),
            Check((*GO_STATIC, "go", "vet", *GO_FLAGS, "./...")),
            # The race detector needs cgo (the recipe's env).
            Check(
                ("go", "test", "-race", "-count=1", "./..."),
                prepare=("go", "test", "-race", "-count=1", "-run", "^$", "./..."),
            ),
        ),
        env={"CGO_ENABLED": "1"},
    ),
    "nodejs": Recipe(
        name="nodejs",
        folder="polyglot/nodejs",
        toolchains=(NODE, NPM),
        inputs=("package.json", "package-lock.json", "tsconfig*.json", "src/**/*.ts"),
        copy_inputs=True,
        build=(
            ("npm", "ci", "--no-audit", "--no-fund"),
            ("npm", "run", "build"),
        ),
        # A young generation of 1 MB semi-spaces (V8's default grows to 16 MB each) and V8's
        # memory-saving heuristics: docs/polyglot/nodejs.md has what each flag gave.
        run=("node", "--max-semi-space-size=1", "--optimize-for-size", "{out}/dist/main.js"),
        checks=(
            Check(("npm", "ci", "--no-audit", "--no-fund")),
            Check(("npm", "run", "lint")),
            Check(("npm", "run", "typecheck")),
            Check(("npm", "test"), prepare=("npm", "run", "pretest")),
        ),
    ),
    "rust": Recipe(
        name="rust",
        folder="polyglot/rust",
        toolchains=(CARGO,),
        # vendor/: the patched copies of two crates (Cargo.toml's [patch.crates-io]).
        inputs=("Cargo.toml", "Cargo.lock", "src/**/*.rs", "build.rs", "vendor/**/*"),
        check_inputs=("tests/**/*",),
        # cargo judges a crate of the workspace or a path (ours, the vendored ones) fresh by the
        # modification times of its files, which every new clone renews: built in the checkout,
        # they would be compiled again by each fresh clone (CI's: about 3 minutes a run).
        mirrored=True,
        build=(
            ("cargo", "build", "--release", "--locked"),
            ("cp", f"{RUST_TARGET}/release/devstack-api", "{out}/devstack-api"),
        ),
        run=("{out}/devstack-api",),
        checks=(
            Check(("cargo", "fmt", "--check")),
            Check(("cargo", "clippy", "--release", "--locked", "--", "-D", "warnings")),
            Check(
                ("cargo", "test", "--release", "--locked"),
                prepare=("cargo", "test", "--release", "--locked", "--no-run"),
            ),
        ),
        env={"CARGO_TARGET_DIR": RUST_TARGET},
    ),
}


def recipe(name: str) -> Recipe | None:
    return RECIPES.get(name)


def _fill(text: str, out: Path | None = None) -> str:
    text = text.replace("{cache}", str(cache_dir()))
    return text.replace("{out}", str(out)) if out is not None else text


def tool_env(r: Recipe) -> dict[str, str]:
    return {**os.environ, **{k: _fill(v) for k, v in r.env.items()}}


def input_files(r: Recipe) -> list[Path]:
    """The files that make a build: every input pattern, outside build and dependency folders."""
    return _matching(r.source, r.inputs)


def check_input_files(r: Recipe) -> list[Path]:
    """The files the checks read beyond the inputs (`check_inputs`)."""
    return _matching(r.source, r.check_inputs)


def _matching(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """The files under `folder` matching any of `patterns`, outside build and dependency folders,
    relative to `folder`."""
    skip = {"node_modules", "target", "dist", ".git"}
    found: set[Path] = set()
    for pattern in patterns:
        for path in folder.glob(pattern):
            relative = path.relative_to(folder)
            if path.is_file() and not skip.intersection(relative.parts):
                found.add(relative)
    return sorted(found)


def build_key(r: Recipe) -> str:
    """A hash of the recipe and of every input file's name and content."""
    digest = hashlib.sha256(repr((r.build, r.run, r.env, r.copy_inputs)).encode())
    for relative in input_files(r):
        digest.update(str(relative).encode() + b"\0")
        digest.update((r.source / relative).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def output_dir(r: Recipe) -> Path:
    return cache_dir() / "polyglot" / r.name / build_key(r)


def missing_toolchains(r: Recipe) -> list[Toolchain]:
    """The toolchains that are not on PATH, or older than the recipe needs."""
    return [
        tool
        for tool in r.toolchains
        if shutil.which(tool.program) is None or toolchain_release(tool) < tool.minimum
    ]


def toolchain_version(tool: Toolchain) -> str | None:
    if shutil.which(tool.program) is None or not tool.version_argv:
        return None
    done = subprocess.run(tool.version_argv, capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def toolchain_release(tool: Toolchain) -> tuple[int, ...]:
    """The leading numbers of the version a toolchain prints (`v20.20.2` -> (20, 20, 2)); empty
    when it prints none."""
    found = re.search(r"\d+(?:\.\d+)*", toolchain_version(tool) or "")
    return tuple(int(part) for part in found.group().split(".")) if found else ()


class BuildError(RuntimeError):
    pass


def mirror_dir(r: Recipe) -> Path:
    return cache_dir() / "polyglot" / r.name / "mirror"


@contextlib.contextmanager
def in_mirror(r: Recipe) -> Iterator[Path]:
    """The recipe's mirror, made equal to its source folder's inputs and check inputs, held (a
    lock) until the block ends: another `up` or `test`, from another clone too, waits.

    A file is written only when its content differs from the mirror's, and a file no longer in
    the source is removed: an unchanged file keeps its modification time, so a fresh clone of the
    same source (new times on every file) leaves the builds fresh, and an edited file is newer."""
    mirror = mirror_dir(r)
    mirror.mkdir(parents=True, exist_ok=True)
    with (mirror.parent / "mirror.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = set(input_files(r)) | set(check_input_files(r))
        for relative in sorted(wanted):
            data = (r.source / relative).read_bytes()
            target = mirror / relative
            if target.is_file() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            partial.write_bytes(data)
            shutil.copymode(r.source / relative, partial)
            partial.replace(target)
        for relative in set(_matching(mirror, ("**/*",))) - wanted:
            (mirror / relative).unlink()
        yield mirror


def _working_folder(r: Recipe) -> contextlib.AbstractContextManager[Path]:
    """Where the recipe's builds and checks run: its mirror (held), or its source folder."""
    return in_mirror(r) if r.mirrored else contextlib.nullcontext(r.source)


def build(r: Recipe, log_file: Path, say: Callable[[str], None] = print) -> Path:
    """The output folder of a current build of `r`, building it first when there is none."""
    out = output_dir(r)
    if (out / BUILT_MARKER).exists():
        return out
    missing = missing_toolchains(r)
    if missing:
        raise BuildError(
            f"{r.name} needs {', '.join(t.program for t in missing)}: "
            + "; ".join(t.install for t in missing)
        )
    say(f"building {r.name} from {r.folder} into {out.parent} (log: {log_file})")
    started = time.monotonic()
    work = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if r.copy_inputs:
        for relative in input_files(r):
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(r.source / relative, work / relative)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log, _working_folder(r) as folder:
        for step in r.build:
            argv = [_fill(arg, work) for arg in step]
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            done = subprocess.run(
                argv,
                cwd=work if r.copy_inputs else folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=tool_env(r),
                check=False,
            )
            if done.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                raise BuildError(f"building {r.name} failed at `{' '.join(step)}`; see {log_file}")
    (work / BUILT_MARKER).write_text(f"{time.monotonic() - started:.1f}\n")
    try:
        work.rename(out)
    except OSError:  # another `up` finished the same build first
        shutil.rmtree(work, ignore_errors=True)
    prune(out.parent, keep=KEEP_BUILDS)
    say(f"built {r.name} in {time.monotonic() - started:.1f}s")
    return out


# Builds kept per implementation: another stack (the tests', a second checkout) may still run an
# older one, and its supervisor restarts it from there.
KEEP_BUILDS = 3


def prune(folder: Path, keep: int) -> None:
    """Remove all but the `keep` most recently finished builds in `folder`."""
    finished = sorted(
        (p for p in folder.iterdir() if (p / BUILT_MARKER).exists()),
        key=lambda p: (p / BUILT_MARKER).stat().st_mtime,
        reverse=True,
    )
    for old in finished[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def record_build(settings: Settings, name: str, out: Path) -> None:
    """Remember which build the launcher runs (the supervisor may restart it later)."""
    path = build_record(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(out) + "\n")


def build_record(settings: Settings, name: str) -> Path:
    return settings.state.root / "polyglot" / name


def run_command(settings: Settings, r: Recipe) -> list[str]:
    """The command that runs the build `up` prepared for this stack."""
    try:
        out = Path(build_record(settings, r.name).read_text().strip())
    except FileNotFoundError:
        raise BuildError(f"{r.name} has not been built: `devstack up` builds it") from None
    if not (out / BUILT_MARKER).exists():
        raise BuildError(f"the {r.name} build in {out} is gone: run `devstack up` again")
    return [_fill(arg, out) for arg in r.run]


def _stage(r: Recipe, stage: Stage) -> list[Check]:
    if stage == "beside":
        return [Check(c.prepare) if c.prepare else c for c in r.checks]
    if stage == "after":
        return [c for c in r.checks if c.prepare]
    return list(r.checks)


def _lowest_priority() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, 19)


def run_checks(
    r: Recipe,
    say: Callable[[str], None] = print,
    *,
    stage: Stage = "all",
    output: IO[str] | None = None,
    lowest_priority: bool = False,
) -> bool:
    """Run the recipe's checks of `stage` in its source folder (or its mirror); False at the first
    that fails. `output`: where the commands write (the terminal when None)."""
    with _working_folder(r) as folder:
        for check in _stage(r, stage):
            argv = [_fill(arg) for arg in check.argv]
            say(f"$ ({r.folder}) {' '.join(argv)}")
            started = time.monotonic()
            done = subprocess.run(
                argv,
                cwd=folder,
                env=tool_env(r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if check.silent else output,
                stderr=subprocess.STDOUT if output is not None or check.silent else None,
                text=True,
                check=False,
                # The command's own niceness, set in the child (`devstack test` runs no thread).
                preexec_fn=_lowest_priority if lowest_priority else None,
            )
            # CI's log shows where a cold run's time goes.
            say(f"  ({time.monotonic() - started:.1f} s)")
            if done.returncode != 0:
                if check.silent:
                    say(done.stdout.rstrip())
                return False
            if check.silent and done.stdout.strip():
                say(f"`{' '.join(argv)}` reported:\n{done.stdout.rstrip()}")
                return False
    return True

"""The polyglot build cache: built once per change of the inputs, outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from devstack_cli import polyglot
from devstack_cli.polyglot import BuildError, Check, Recipe, Toolchain
from devstack_cli.settings import Settings
from devstack_cli.stack import stack

# A "build" that counts its runs and writes a program that prints its source.
BUILD = (
    sys.executable,
    "-c",
    "import pathlib, sys; out = pathlib.Path(sys.argv[1]); "
    "count = pathlib.Path(sys.argv[2]); count.write_text(count.read_text() + 'x'); "
    "(out / 'program').write_text(pathlib.Path('src/main.txt').read_text())",
    "{out}",
)


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "impl"
    (folder / "src").mkdir(parents=True)
    (folder / "manifest").write_text("v1\n")
    (folder / "src" / "main.txt").write_text("hello\n")
    (tmp_path / "count").write_text("")
    return folder


def recipe_for(source: Path, *, copy_inputs: bool = False, fail: bool = False) -> Recipe:
    step = (sys.executable, "-c", "raise SystemExit(3)") if fail else BUILD
    return Recipe(
        name="demo",
        folder=str(source),  # absolute: repo_root() / folder is the folder itself
        toolchains=(Toolchain(Path(sys.executable).name, "install Python"),),
        inputs=("manifest", "src/**/*.txt"),
        build=((*step, str(source.parent / "count")),),
        run=("cat", "{out}/program"),
        checks=(),
        copy_inputs=copy_inputs,
    )


def builds_run(source: Path) -> int:
    return len((source.parent / "count").read_text())


def test_built_once_then_again_only_when_an_input_changes(source: Path, tmp_path: Path) -> None:
    recipe = recipe_for(source)
    log = tmp_path / "setup.log"
    first = polyglot.build(recipe, log, say=lambda _: None)
    assert first.is_relative_to(tmp_path / "cache" / "devstack" / "polyglot" / "demo")
    assert (first / "program").read_text() == "hello\n"
    assert polyglot.build(recipe, log, say=lambda _: None) == first
    assert builds_run(source) == 1

    (source / "notes.md").write_text("not an input\n")
    assert polyglot.build(recipe, log, say=lambda _: None) == first
    assert builds_run(source) == 1

    (source / "src" / "main.txt").write_text("changed\n")
    second = polyglot.build(recipe, log, say=lambda _: None)
    assert second != first
    assert (second / "program").read_text() == "changed\n"
    assert builds_run(source) == 2
    assert first.exists(), "another stack may still run the previous build"
    for version in range(polyglot.KEEP_BUILDS):
        (source / "src" / "main.txt").write_text(f"version {version}\n")
        polyglot.build(recipe, log, say=lambda _: None)
    assert not first.exists(), "only the newest builds are kept"
    assert not second.exists(), "only the newest builds are kept"
    assert len(list(first.parent.iterdir())) == polyglot.KEEP_BUILDS


def test_copied_inputs_are_built_in_the_output_folder(source: Path, tmp_path: Path) -> None:
    out = polyglot.build(recipe_for(source, copy_inputs=True), tmp_path / "log", say=print)
    assert (out / "src" / "main.txt").read_text() == "hello\n"
    assert (out / "manifest").exists()


def files_in(folder: Path) -> dict[str, tuple[str, float]]:
    """Each file under `folder`: its text and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_text(), p.stat().st_mtime)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_a_mirror_rewrites_only_what_a_fresh_clone_changed(source: Path, tmp_path: Path) -> None:
    (source / "tests").mkdir()
    (source / "tests" / "check.txt").write_text("read by the checks\n")
    (source / "notes.md").write_text("read by nothing\n")
    recipe = replace(recipe_for(source), mirrored=True, check_inputs=("tests/*.txt",))
    with polyglot.in_mirror(recipe) as mirror:
        assert mirror == polyglot.mirror_dir(recipe)
        assert sorted(files_in(mirror)) == ["manifest", "src/main.txt", "tests/check.txt"]
        long_ago = time.time() - 86400
        for path in mirror.rglob("*"):
            os.utime(path, (long_ago, long_ago))
        before = files_in(mirror)

    # A fresh clone: the same files, each with a new modification time.
    clone = tmp_path / "clone"
    shutil.copytree(source, clone, copy_function=shutil.copy)
    cloned = replace(recipe, folder=str(clone))
    with polyglot.in_mirror(cloned) as mirror:
        assert files_in(mirror) == before, "an unchanged file is not written again"

    (clone / "src" / "main.txt").write_text("edited\n")
    (clone / "tests" / "check.txt").unlink()
    with polyglot.in_mirror(cloned) as mirror:
        after = files_in(mirror)
    assert after["manifest"] == before["manifest"]
    assert after["src/main.txt"][0] == "edited\n"
    assert after["src/main.txt"][1] > before["src/main.txt"][1], "newer than the build it changes"
    assert "tests/check.txt" not in after, "a file gone from the source is gone from the mirror"


def test_a_mirrored_recipe_builds_and_checks_in_its_mirror(source: Path, tmp_path: Path) -> None:
    mirror = polyglot.mirror_dir(recipe_for(source))
    in_mirror = (sys.executable, "-c", f"import os, sys; sys.exit(os.getcwd() != {str(mirror)!r})")
    recipe = replace(
        recipe_for(source), mirrored=True, checks=(Check(in_mirror),), build=(in_mirror,)
    )
    assert polyglot.run_checks(recipe, say=lambda _: None)
    polyglot.build(recipe, tmp_path / "log", say=lambda _: None)
    assert not polyglot.run_checks(replace(recipe, mirrored=False), say=lambda _: None)


def test_a_failed_build_names_its_step_and_log_and_leaves_nothing(
    source: Path, tmp_path: Path
) -> None:
    recipe = recipe_for(source, fail=True)
    with pytest.raises(BuildError, match=r"building demo failed at .*; see .*setup\.log"):
        polyglot.build(recipe, tmp_path / "setup.log", say=lambda _: None)
    cache = tmp_path / "cache" / "devstack" / "polyglot" / "demo"
    assert list(cache.iterdir()) == []


def test_a_missing_toolchain_is_named_with_its_install_command(source: Path) -> None:
    recipe = Recipe(
        name="demo",
        folder=str(source),
        toolchains=(Toolchain("no-such-compiler-here", "install it with: apt-get install nsc"),),
        inputs=("manifest",),
        build=(),
        run=(),
        checks=(),
    )
    with pytest.raises(BuildError, match="demo needs no-such-compiler-here: install it with"):
        polyglot.build(recipe, source / "log", say=lambda _: None)


@pytest.mark.parametrize(
    ("printed", "missing"),
    [("v18.20.4", True), ("v20.11.0", True), ("v20.19.0", False), ("", True)],
)
def test_a_toolchain_older_than_the_recipe_needs_counts_as_missing(
    source: Path, printed: str, missing: bool
) -> None:
    node = Toolchain("echo", "install Node.js 20.19+", ("echo", printed), minimum=(20, 19))
    recipe = Recipe("demo", str(source), (node,), ("manifest",), (), (), ())
    assert polyglot.missing_toolchains(recipe) == ([node] if missing else [])


def test_the_launcher_runs_the_build_up_recorded(source: Path, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    recipe = recipe_for(source)
    with pytest.raises(BuildError, match="`devstack up` builds it"):
        polyglot.run_command(settings, recipe)
    out = polyglot.build(recipe, tmp_path / "log", say=lambda _: None)
    polyglot.record_build(settings, "demo", out)
    (source / "src" / "main.txt").write_text("edited after up\n")  # not rebuilt until `up`
    assert polyglot.run_command(settings, recipe) == ["cat", f"{out}/program"]


def test_a_silent_check_fails_when_it_prints(source: Path) -> None:
    def recipe(*checks: Check) -> Recipe:
        return Recipe("demo", str(source), (), ("manifest",), (), (), checks)

    assert polyglot.run_checks(recipe(Check(("true",)), Check(("true",), silent=True)))
    assert not polyglot.run_checks(recipe(Check(("echo", "a.go"), silent=True)))
    assert not polyglot.run_checks(recipe(Check(("false",)), Check(("true",))))


def test_beside_pytest_a_check_that_runs_tests_only_compiles_them_at_the_lowest_priority(
    source: Path, tmp_path: Path
) -> None:
    niceness = (sys.executable, "-c", "import os; print('niceness', os.getpriority(0, 0))")
    recipe = Recipe(
        "demo",
        str(source),
        (),
        ("manifest",),
        (),
        (),
        (Check(("echo", "lint")), Check(("echo", "the tests ran"), prepare=niceness)),
    )

    def run(stage: polyglot.Stage, lowest_priority: bool) -> str:
        log = tmp_path / f"{stage}.log"
        with log.open("w") as output:

            def say(line: str) -> None:
                output.write(f"{line}\n")
                output.flush()

            assert polyglot.run_checks(
                recipe, say, stage=stage, output=output, lowest_priority=lowest_priority
            )
        return log.read_text()

    beside = run("beside", lowest_priority=True)
    assert "lint" in beside
    assert "niceness 19" in beside
    assert "the tests ran" not in beside
    after = run("after", lowest_priority=False)
    assert "the tests ran" in after
    assert "lint" not in after
    assert "niceness" not in after
    everything = run("all", lowest_priority=False)
    assert "lint" in everything
    assert "the tests ran" in everything
    assert "niceness" not in everything


def test_every_polyglot_api_of_the_table_has_a_recipe_and_back() -> None:
    apis = {s.name for s in stack().services.values() if s.kind == "api"}
    assert set(polyglot.RECIPES) == apis - {"code_first", "api_first"}
    for name, recipe in polyglot.RECIPES.items():
        assert recipe.name == name
        assert recipe.folder == f"polyglot/{name}"


# Files of an implementation that neither its build nor its mirrored checks read.
READ_BY_NO_BUILD = {
    "golang": {".gitignore"},
    "nodejs": {".gitignore", "eslint.config.js", "scripts/*", "test/*"},
    "rust": {".gitignore"},
}


def test_every_file_of_an_implementation_is_an_input_or_read_by_no_build() -> None:
    """A file a build reads but the build key does not hash would be missed: an edit of it would
    leave `up` running the build from before."""
    for name, recipe in polyglot.RECIPES.items():
        accounted = set(polyglot.input_files(recipe)) | set(polyglot.check_input_files(recipe))
        for pattern in READ_BY_NO_BUILD[name]:
            accounted |= {p.relative_to(recipe.source) for p in recipe.source.glob(pattern)}
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "."],
            cwd=recipe.source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        held = {Path(file) for file in listed.split("\0") if file}  # what the repository holds
        assert held, name
        assert held <= accounted, f"{name}: not an input: {sorted(held - accounted)}"

"""Every example in README.md and docs/*.md runs, so the documentation cannot drift from the code.

The convention (docs/contributing.md says the same for writers):

- A fenced block's info string says what it is, and every block must say it:
  ``python`` blocks run in order with the page's other python blocks, in one namespace, and every
  ``test_*`` function a block defines is called; ``pycon`` blocks are doctests in that namespace;
  ``bash`` blocks run each command line (``\\`` continues a line, ``#`` lines are comments);
  ``console`` blocks run each ``$ `` line and compare what it prints with the lines below it
  (``...`` matches anything, whitespace runs are equal). A command must exit 0 unless its line's comment
  says ``exit N``: ``parity check bad.py  # the seed fails: exit 1``.
  ``json``, ``toml`` and ``yaml`` blocks are parsed, not run; ``text`` and ``ini`` blocks are shown only.
  Any other fence, or none, fails: nothing slips past unlabelled.
- An HTML comment on the line before a block (invisible on the rendered page) changes it:
  ``<!-- file: NAME -->`` writes the block to NAME in the page's folder instead of running it (python is
  compiled), for the commands below it; ``<!-- excerpt: PATH -->`` requires its lines to appear, in a row,
  in the repository file PATH; ``<!-- raises: NAME -->`` requires a python block to raise exception NAME;
  ``<!-- not run: REASON -->`` skips a block that needs the network, a GPU or a long time (counted: few allowed).
- Each page runs in its own temporary folder holding links to the repository's files (``fixtures/``,
  ``parity/``, ``.venv``…): paths in examples are relative to the repository root, and what the examples
  write (reports, snapshots, results) stays out of the checkout. Commands find ``.venv/bin`` first on PATH.
- A plain ``parity ...`` or ``pytest ...`` line (environment assignments allowed; no pipe, redirection,
  expansion or second command) runs in this process, through the function its console script calls, in
  the page's folder with the environment a subprocess would get, its file descriptors 1 and 2 captured:
  the same program without starting an interpreter and importing torch again. Any other line runs in bash.

One test per block (``test_example[docs/cli.md:42]``); a block runs after the page's earlier blocks,
whichever test asks first. Commands that leave the folder as they found it are run once per session.

The reference pages are complete by construction: every flag of every ``parity`` subcommand (read from
its argparse parser) is described in docs/cli.md and used by a command run there; every option, ini
option and marker of the pytest plugin (read from a pytest parser it fills) likewise in docs/pytest.md;
docs/api.md renders every name ``parity`` exports, from the code, and ``mkdocs build --strict`` passes.
"""

from __future__ import annotations

import argparse
import doctest
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# What a page's folder links to: everything an example may name relative to the repository root.
LINKED = (".ci", ".venv", "benchmarks", "conftest.py", "docs", "fixtures", "mkdocs.yml", "parity",
          "pyproject.toml", "README.md", "scripts", "tests")
RUN, PARSED, SHOWN = {"python", "pycon", "bash", "console"}, {"json", "toml", "yaml"}, {"text", "ini"}
DIRECTIVES = ("file", "excerpt", "raises", "not run")
MAX_NOT_RUN = 6  # blocks that need the network, a GPU or a long time; each must say why
COMMAND_TIMEOUT_S = 600

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<name>[a-z ]+?)\s*:\s*(?P<argument>.*?)\s*-->\s*$")
_EXIT = re.compile(r"#[^'\"]*\bexit (\d+)\b(?!/)")  # "exit 0/1/2" names no single status


class ExampleFailed(AssertionError):
    """A block that does not do what its page says; the message names the page and line."""


def _expect(condition, message: str) -> None:
    if not condition:
        raise ExampleFailed(message)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page, with the directive on the line before it."""

    page: Path
    line: int  # of the opening fence, 1-based
    fence: str  # the info string's first word; "" when there is none
    text: str
    directive: str = ""
    argument: str = ""
    closed: bool = True

    @property
    def id(self) -> str:
        shown = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page.name
        return f"{shown}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order (indented blocks, in lists, are dedented)."""
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
        directive = _DIRECTIVE.match(previous)
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                       and not lines[j].strip().strip(fence[0])):
            body.append(lines[j][indent:] if not lines[j][:indent].strip() else lines[j].lstrip())
            j += 1
        blocks.append(Block(page, i + 1, opening["info"].split()[0] if opening["info"].strip() else "",
                            "\n".join(body) + "\n", directive["name"] if directive else "",
                            directive["argument"] if directive else "", closed=j < len(lines)))
        i = j + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


@dataclass(frozen=True)
class Command:
    """A command line of a bash or console block, with the exit status and output it must give."""

    line: str
    exit_code: int = 0
    expected: str | None = None  # console blocks: the lines printed below it


def commands_of(block: Block) -> list[Command]:
    """The commands of a bash or console block, lines continued with a backslash joined."""
    logical, pending = [], ""
    for raw in block.text.splitlines():
        pending += raw
        if raw.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    if block.fence == "bash":
        return [Command(line, _exit_code(line)) for line in logical if line.strip() and not line.lstrip().startswith("#")]
    commands: list[Command] = []  # console: "$ command", then its output
    for line in logical:
        if line.startswith("$ "):
            commands.append(Command(line[2:], _exit_code(line), ""))
        elif commands:
            last = commands[-1]
            commands[-1] = Command(last.line, last.exit_code, f"{last.expected}{line}\n")
        elif line.strip():
            raise ExampleFailed(f"{block.id}: console output before any '$ ' command: {line!r}")
    return commands


def _exit_code(line: str) -> int:
    found = _EXIT.search(line)
    return int(found[1]) if found else 0


def _listing(folder: Path) -> frozenset:
    """Names and sizes of what examples wrote into a page's folder (the links into the repository aside)."""
    seen = set()
    for top, dirs, files in os.walk(folder):  # does not descend into linked folders
        for name in files + dirs:
            path = Path(top, name)
            if not path.is_symlink():
                seen.add((str(path.relative_to(folder)), path.stat().st_size if name in files else -1))
    return frozenset(seen)


class _Cwd:
    """Run in ``folder`` (contextlib.chdir, which parity's Python 3.10 lacks)."""

    def __init__(self, folder: Path):
        self.folder, self.previous = folder, Path.cwd()

    def __enter__(self):
        os.chdir(self.folder)

    def __exit__(self, *exc):
        os.chdir(self.previous)


@dataclass(frozen=True)
class Done:
    """What a command did: its exit status, and what it printed (stdout, then stderr)."""

    returncode: int
    output: str


def _environment() -> dict[str, str]:
    """A command's environment: the test run's, without pytest's own variables, ``.venv/bin`` first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _parity(args: list[str]) -> int:
    from parity.cli import main  # what the `parity` console script calls

    try:
        return main(args)
    except SystemExit as exc:  # --help, --version, argparse's usage errors
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)


def _pytest(args: list[str]) -> int:
    return int(pytest.main(args))  # what the `pytest` console script calls


IN_PROCESS = {"parity": _parity, "pytest": _pytest}
_SHELL = re.compile(r"[|&;<>()$`*?\[\]{}~\\!]")  # outside quotes: work for a shell, so bash runs the line
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=")


@dataclass(frozen=True)
class PlainCommand:
    """A ``parity`` or ``pytest`` line with nothing for a shell to do, run in this process."""

    env: dict
    program: str
    args: list


def plain_command(line: str) -> PlainCommand | None:
    """The program and arguments of ``[NAME=VALUE...] [.venv/bin/]parity|pytest ARGS  # comment``, else None."""
    unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "''", line)
    if _SHELL.search(re.split(r"(?:^|\s)#", unquoted, maxsplit=1)[0]):
        return None
    words = shlex.split(line, comments=True)
    env = {}
    while words and _ASSIGNMENT.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    if not words or words[0] not in {*IN_PROCESS, *(f".venv/bin/{name}" for name in IN_PROCESS)}:
        return None
    return PlainCommand(env, Path(words[0]).name, words[1:])


def _in_process(command: PlainCommand, folder: Path, capfd) -> Done:
    """Run ``command`` here as a subprocess would run it: in ``folder``, with its environment, fd 1 and 2 captured;
    what the test printed before is put back, and the environment and import path restored."""
    saved_env, saved_path = dict(os.environ), list(sys.path)
    earlier = capfd.readouterr()
    os.environ.clear()
    os.environ.update({**_environment(), **command.env})
    try:
        with _Cwd(folder):
            code = IN_PROCESS[command.program](command.args)
    finally:
        printed = capfd.readouterr()
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        sys.stdout.write(earlier.out)
        sys.stderr.write(earlier.err)
    return Done(code, printed.out + printed.err)


class PageRun:
    """One page's examples, run in order in one folder and one Python namespace."""

    def __init__(self, blocks: list[Block], folder: Path, commands: dict):
        self.blocks = blocks
        self.folder = folder
        self.namespace: dict = {"__name__": "docs_example"}
        self.failures: dict[int, str] = {}
        self.done: set[int] = set()
        self.commands = commands  # shared by pages: (command, folder listing) -> Done
        self.capfd = None  # the asking test's, for the commands run in this process
        folder.mkdir(parents=True, exist_ok=True)
        for name in LINKED:
            if (ROOT / name).exists():
                (folder / name).symlink_to(ROOT / name)

    def run(self, index: int, capfd) -> None:
        """Run block ``index`` after every earlier block of the page; raise its failure."""
        self.capfd = capfd
        for i in range(index + 1):
            if i in self.done:
                continue
            self.done.add(i)
            try:
                self._run(self.blocks[i])
            except pytest.skip.Exception:
                raise
            except ExampleFailed as exc:
                self.failures[i] = str(exc)
            except (Exception, SystemExit, pytest.fail.Exception) as exc:  # the example's own error, with its traceback
                import traceback

                self.failures[i] = f"{self.blocks[i].id}:\n" + "".join(traceback.format_exception(exc))
        if index in self.failures:
            earlier = [self.blocks[i].id for i in self.failures if i < index]
            pytest.fail(self.failures[index] + (f"\n(earlier blocks failed too: {', '.join(earlier)})" if earlier else ""),
                        pytrace=False)

    def _run(self, block: Block) -> None:
        _expect(block.closed, f"{block.id}: the code block is never closed")
        if block.directive == "not run":
            return
        _expect(block.fence in RUN | PARSED | SHOWN, f"{block.id}: unknown fence {block.fence or '(none)'!r}: label "
                f"it {', '.join(sorted(RUN | PARSED | SHOWN))} (docs/contributing.md)")
        if block.directive == "excerpt":
            return _check_excerpt(block)
        if block.directive == "file":
            target = self.folder / block.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
            if block.fence == "python":
                compile(block.text, str(target), "exec")
            elif block.fence in PARSED:
                _parse(block)
            return
        if block.fence in PARSED:
            return _parse(block)
        if block.fence in SHOWN:
            return
        with _Cwd(self.folder):
            if block.fence == "python":
                return self._python(block)
            if block.fence == "pycon":
                return self._doctest(block)
        for command in commands_of(block):
            self._command(block, command)

    def _python(self, block: Block) -> None:
        before = dict(self.namespace)
        code = compile("\n" * block.line + block.text, str(block.page), "exec")  # tracebacks show the page's lines
        try:
            exec(code, self.namespace)
            for name, function in list(self.namespace.items()):
                if name.startswith("test_") and callable(function) and before.get(name) is not function:
                    _expect(not inspect.signature(function).parameters,
                            f"{block.id}: {name} takes arguments; a test in the docs takes none")
                    function()
        except ExampleFailed:
            raise
        except BaseException as exc:
            names = {cls.__name__ for cls in type(exc).__mro__}
            if block.directive == "raises" and block.argument in names:
                return
            raise
        _expect(block.directive != "raises", f"{block.id}: expected {block.argument}, nothing was raised")

    def _doctest(self, block: Block) -> None:
        test = doctest.DocTestParser().get_doctest(block.text, self.namespace, block.id, str(block.page), block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append, clear_globs=False)
        _expect(not runner.failures, "".join(report))

    def _command(self, block: Block, command: Command) -> None:
        key = (command.line, _listing(self.folder))
        done = self.commands.get(key)
        if done is None:
            done = self._execute(command.line)
            if _listing(self.folder) == key[1]:  # it wrote nothing: the same command gives the same result
                self.commands[key] = done
        if done.returncode != command.exit_code:
            raise ExampleFailed(f"{block.id}: `{command.line}` exited {done.returncode}, the page says "
                                 f"{command.exit_code} (a comment saying `exit N` on the line sets another); its output "
                                 f"ends:\n{done.output[-4000:]}")
        checker, flags = doctest.OutputChecker(), doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        if command.expected and command.expected.strip() and not checker.check_output(command.expected, done.output, flags):
            raise ExampleFailed(f"{block.id}: `{command.line}` printed something else than the page shows:\n"
                                 + checker.output_difference(doctest.Example(command.line, command.expected),
                                                             done.output, flags))

    def _execute(self, line: str) -> Done:
        plain = plain_command(line)
        if plain is not None:
            return _in_process(plain, self.folder, self.capfd)
        done = subprocess.run(["bash", "-c", line], cwd=self.folder, env=_environment(), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
        return Done(done.returncode, done.stdout + done.stderr)


def _check_excerpt(block: Block) -> None:
    source = ROOT / block.argument
    _expect(source.is_file(), f"{block.id}: excerpt of {block.argument}, which does not exist")
    wanted = [line.strip() for line in block.text.splitlines() if line.strip()]
    have = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    _expect(any(have[i:i + len(wanted)] == wanted for i in range(len(have) - len(wanted) + 1)),
            f"{block.id}: these lines are no longer in {block.argument}, in a row: update the page from the file")


def _parse(block: Block) -> None:
    if block.fence == "json":
        json.loads(block.text)
    elif block.fence == "toml":
        tomllib = pytest.importorskip("tomllib", reason="Python 3.11's tomllib parses the toml examples")
        tomllib.loads(block.text)
    else:
        yaml = pytest.importorskip("yaml", reason="PyYAML parses the yaml examples")
        yaml.safe_load(block.text)


@pytest.fixture(scope="session")
def page_runs(tmp_path_factory):
    runs: dict[Path, PageRun] = {}
    commands: dict = {}

    def get(page: Path) -> PageRun:
        if page not in runs:
            blocks = [block for block in ALL_BLOCKS if block.page == page]  # as collected
            runs[page] = PageRun(blocks, tmp_path_factory.mktemp(page.stem), commands)
        return runs[page]

    return get


@pytest.mark.slow  # the pages' examples run the seed's checks, pytest runs and servers
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.id for b in ALL_BLOCKS])
def test_example(block, page_runs, capfd):
    if block.directive == "not run":
        pytest.skip(f"{block.id}: not run: {block.argument}")
    run = page_runs(block.page)
    run.run(run.blocks.index(block), capfd)


def test_a_page_that_lies_fails_at_its_line(tmp_path, capfd):
    """The runner itself: each way an example can be wrong fails, naming the page and line."""
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent("""\
        <!-- file: numbers.py -->
        ```python
        ANSWER = 42
        ```

        ```python
        assert open("numbers.py").read() == "ANSWER = 42\\n"  # written into the page's folder, not run
        ```

        ```bash
        test -f numbers.py
        false  # the page says: exit 0
        ```

        ```console
        $ echo hello world
        hello ...
        $ echo goodbye
        hello
        ```

        <!-- raises: ZeroDivisionError -->
        ```python
        1 / 0
        ```

        <!-- excerpt: pyproject.toml -->
        ```toml
        name = "not-parity"
        ```

        ```
        unlabelled
        ```
        """))
    run = PageRun(blocks_of(page), tmp_path / "run", {})
    outcomes = {}
    for index, block in enumerate(run.blocks):
        try:
            run.run(index, capfd)
            outcomes[block.line] = "passed"
        except pytest.fail.Exception as exc:
            outcomes[block.line] = str(exc).splitlines()[0]
    assert [line for line, outcome in outcomes.items() if outcome == "passed"] == [2, 6, 23]
    assert outcomes[10] == "page.md:10: `false  # the page says: exit 0` exited 1, the page says 0 (a comment " \
                           "saying `exit N` on the line sets another); its output ends:"
    assert outcomes[15] == "page.md:15: `echo goodbye` printed something else than the page shows:"
    assert outcomes[28] == "page.md:28: these lines are no longer in pyproject.toml, in a row: update the page from " \
                           "the file"
    assert outcomes[32].startswith("page.md:32: unknown fence '(none)'")


def test_only_plain_parity_and_pytest_lines_run_in_process():
    assert plain_command("NO_COLOR=1 parity check cfg.py --strict-gpu -q  # exit 1") == \
        PlainCommand({"NO_COLOR": "1"}, "parity", ["check", "cfg.py", "--strict-gpu", "-q"])
    assert plain_command('.venv/bin/pytest -m "parity(stage=\'resize\')" -k "a and b"') == \
        PlainCommand({}, "pytest", ["-m", "parity(stage='resize')", "-k", "a and b"])
    for line in ("parity check cfg.py > out.txt", "parity check cfg.py | tee out.txt", "parity check $CFG",
                 "parity merge shard-*.json", "cd docs && parity --version", "python -m parity --version",
                 "echo parity"):
        assert plain_command(line) is None, line  # bash runs these


@pytest.mark.parametrize("line, code", [("parity --version", 0), ("parity --debug check no_such_config.py", 2),
                                        ("NO_COLOR=1 pytest --parity-config no_such_config.py -q", 4)])
def test_a_command_run_in_process_does_what_its_console_script_does(line, code, tmp_path, capfd):
    """The examples' ``parity`` and ``pytest`` lines run in this process: here the same lines in bash, through
    the installed console scripts, give the same exit status and output."""
    here = _in_process(plain_command(line), tmp_path, capfd)
    there = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=_environment(), capture_output=True, text=True)
    assert (here.returncode, here.output) == (there.returncode, there.stdout + there.stderr)
    assert here.returncode == code and here.output


def test_every_directive_is_known():
    unknown = [f"{b.id}: <!-- {b.directive}: ... -->" for b in ALL_BLOCKS if b.directive and b.directive not in DIRECTIVES]
    assert not unknown, f"unknown directives (known: {', '.join(DIRECTIVES)}): {unknown}"


def test_few_examples_are_not_run_and_each_says_why():
    not_run = [b for b in ALL_BLOCKS if b.directive == "not run"]
    assert all(b.argument for b in not_run), [b.id for b in not_run if not b.argument]
    assert len(not_run) <= MAX_NOT_RUN, "too many examples are not run:\n" + "\n".join(
        f"{b.id}: {b.argument}" for b in not_run)


# ---------------------------------------------------------------------------------------------------
# Every flag and ini option is documented, with an example the test above runs.

def _sections(page: Path) -> dict[str, str]:
    """Level-2 sections of a page: heading -> text (heading included)."""
    parts = re.split(r"^(?=## )", page.read_text(), flags=re.M)
    return {part.splitlines()[0]: part for part in parts if part.startswith("## ")}


def _mentions(text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def _run_command_words(page: Path, program: str) -> list[list[str]]:
    """The words of each command of ``page`` that the docs test runs, from ``program`` (e.g. parity) on."""
    found = []
    for block in blocks_of(page):
        if block.fence in {"bash", "console"} and block.directive != "not run":
            for command in commands_of(block):
                words = [w.split("=")[0] if w.startswith("-") else w for w in shlex.split(command.line, comments=True)]
                starts = [i for i, w in enumerate(words) if Path(w).name == program]
                found += [words[starts[0]:]] if starts else []
    return found


def _file_examples(page: Path) -> str:
    return "\n".join(b.text for b in blocks_of(page) if b.directive == "file")


def _cli_commands() -> dict[str, argparse.ArgumentParser]:
    """'' for the top-level parser, then each subcommand's parser by name."""
    from parity.cli.main import _parser

    parser = _parser()
    found = {"": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _flags(parser: argparse.ArgumentParser) -> list[list[str]]:
    return [action.option_strings for action in parser._actions
            if action.option_strings and not isinstance(action, argparse._HelpAction)]


def test_cli_reference_shows_every_flag_of_every_subcommand_with_an_example():
    page = ROOT / "docs" / "cli.md"
    parsers, sections, missing = _cli_commands(), _sections(page), []
    used: dict[str, set] = {name: set() for name in parsers}
    for words in _run_command_words(page, "parity"):
        sub = next((i for i, w in enumerate(words) if w in parsers and w), len(words))
        used[""].update(words[1:sub])
        if sub < len(words):
            used[words[sub]].update(words[sub + 1:])
    for name, parser in parsers.items():
        heading = next((h for h in sections if (f"`parity {name}`" if name else "Global options") in h), None)
        if heading is None:
            missing.append(f"a '## `parity {name}`' section" if name else "a '## Global options' section")
            continue
        for flags in _flags(parser):
            shown = f"parity {name} {'/'.join(flags)}".replace("  ", " ")
            if not all(_mentions(sections[heading], flag) for flag in flags):
                missing.append(f"{shown}: not described in its section")
            if not used[name] & set(flags):
                missing.append(f"{shown}: no example runs it")
    assert not missing, "docs/cli.md lacks:\n" + "\n".join(missing)


def _pytest_options():
    """The parity plugin's command-line options and ini names, read from a pytest parser it fills."""
    from _pytest.config.argparsing import Parser

    from parity import plugin

    parser = Parser(_ispytest=True)
    plugin.pytest_addoption(parser)
    options = [option.names() for group in parser._groups for option in group.options]
    return options + [option.names() for option in parser._anonymous.options], sorted(parser._inidict)


def test_pytest_reference_shows_every_option_ini_and_marker_with_an_example(pytestconfig):
    page = ROOT / "docs" / "pytest.md"
    text, files = page.read_text(), _file_examples(page)
    used = {w for words in _run_command_words(page, "pytest") for w in words}
    options, inis = _pytest_options()
    missing = [f"{'/'.join(names)}: not described" for names in options if not all(_mentions(text, n) for n in names)]
    missing += [f"{'/'.join(names)}: no example runs it" for names in options if not used & set(names)]
    missing += [f"ini {name}: not set in an example file (<!-- file: pytest.ini -->)" for name in inis
                if not _mentions(files, name)]
    markers = [line.split(":")[0] for line in pytestconfig.getini("markers") if line.startswith("parity")]
    assert markers, "the parity plugin registers its marker"
    selections = [words[i + 1] for words in _run_command_words(page, "pytest") for i, w in enumerate(words[:-1])
                  if w == "-m"]
    for marker in markers:
        if f"`{marker}`" not in text:
            missing.append(f"marker `{marker}`: not described")
        if not any(re.match(rf"{marker.split('(')[0]}\b", m) for m in selections):
            missing.append(f"marker {marker}: no example selects items with -m")
    assert not missing, "docs/pytest.md lacks:\n" + "\n".join(missing)


# ---------------------------------------------------------------------------------------------------
# The API reference is generated from the code, and the site builds without a warning.

def test_api_reference_renders_every_public_name():
    import parity

    text = (ROOT / "docs" / "api.md").read_text()
    missing = [f"::: {module}.{name}" for name, module in parity._EXPORTS.items()
               if not re.search(rf"^::: {re.escape(module)}\.{name}\s*$", text, flags=re.M)]
    assert not missing, f"docs/api.md does not render: {missing}"


@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs builds the site (pip install 'parity[dev]')")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] renders docs/api.md")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-6000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "assert_stage_close" in api and "atol" in api  # rendered from the signature, not written by hand

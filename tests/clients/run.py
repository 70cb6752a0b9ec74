#!/usr/bin/env python3
"""Run every example of docs/clients.md against a PostgreSQL server with pg_shred.

The document is the single source: each runnable example is the fenced code block right after
a line `<!-- example: NAME.ext -->`. This runner (Python 3.11, standard library only):

  1. extracts the examples into a temporary directory;
  2. prepares the clients, reusing them when they already match their pins:
     a venv at $PG_SHRED_CLIENTS_DIR/venv from tests/clients/requirements.txt, and
     node-postgres at $PG_SHRED_CLIENTS_DIR/node from tests/clients/package.json and
     package-lock.json (`npm ci`); PG_SHRED_CLIENTS_DIR defaults to the repository's
     target/clients (a relative path is taken from the current directory);
  3. runs each example in a fresh database of its own (PGDATABASE is set for it) on the server
     named by PGHOST, PGPORT and PGUSER, with a timeout (PG_SHRED_CLIENTS_TIMEOUT seconds,
     default 180), and drops that database when the example passed;
  4. prints `test NAME ... ok|FAILED` per example (the example's output after a failure) and
     one closing line in the format of cargo's summary; exits 1 on any failure.

Only a missing runtime skips examples: without `node` and `npm` the node examples are reported
as ignored (neither passed nor failed). A failed pip or npm install fails the examples that
need it. An example passes when it exits 0; the examples assert their own results.

Usage, against a throwaway server:
    bash -c '. scripts/lib.sh; cluster_start /tmp/pgclients 55490; python3 tests/clients/run.py'
Arguments, if any, are example names to run (e.g. `psycopg_text.py`); the others are filtered out.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "clients.md"
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
NODE_FILES = (HERE / "package.json", HERE / "package-lock.json")

MARKER = re.compile(r"^<!--\s*example:\s*([A-Za-z0-9_.-]+)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*([A-Za-z0-9_+-]*)\s*$")
RUNTIMES = {".py": "python", ".mjs": "node", ".js": "node"}


@dataclass
class Example:
    name: str
    line: int
    code: str

    @property
    def runtime(self) -> str | None:
        return RUNTIMES.get(Path(self.name).suffix)


def extract(doc: Path) -> list[Example]:
    """The examples of the document, in order. A marker not followed by a fence is an error."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    examples: list[Example] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if not m:
            i += 1
            continue
        name, at = m.group(1), i + 1
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not fence:
            raise SystemExit(f"{doc}:{at}: `<!-- example: {name} -->` must be followed at once by a fenced code block")
        end = i + 2
        while end < len(lines) and lines[end].strip() != fence.group(1):
            end += 1
        if end == len(lines):
            raise SystemExit(f"{doc}:{at}: the code block of {name} is not closed")
        if any(e.name == name for e in examples):
            raise SystemExit(f"{doc}:{at}: a second example named {name}")
        examples.append(Example(name, at, "\n".join(lines[i + 2:end]) + "\n"))
        i = end + 1
    return examples


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def run_logged(cmd: list[str], cwd: Path | None = None, timeout: float = 1200) -> tuple[bool, str]:
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"$ {' '.join(cmd)}\n{e}\n"
    return p.returncode == 0, f"$ {' '.join(cmd)}\n{p.stdout}" + ("" if p.returncode == 0 else f"(exit {p.returncode})\n")


def prepare_venv(base: Path) -> tuple[Path | None, str]:
    """The venv's python, installed from the pins; None and the log when that failed."""
    venv = base / "venv"
    python = venv / "bin" / "python"
    stamp = venv / ".pg_shred_stamp"
    want = digest(REQUIREMENTS.read_bytes(), sys.version.encode(), str(Path(sys.executable).resolve()).encode())
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python, ""
    shutil.rmtree(venv, ignore_errors=True)
    log = ""
    for cmd in ([sys.executable, "-m", "venv", str(venv)],
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--no-input", "--require-hashes", "--only-binary=:all:", "-r", str(REQUIREMENTS)]):
        ok, out = run_logged(cmd)
        log += out
        if not ok:
            return None, log
    stamp.write_text(want + "\n")
    return python, log


def prepare_node(base: Path) -> tuple[Path | None, str]:
    """The node_modules directory, from the lock file; None and the log when that failed."""
    nodedir = base / "node"
    modules = nodedir / "node_modules"
    stamp = nodedir / ".pg_shred_stamp"
    ok, version = run_logged(["node", "--version"])
    want = digest(*(f.read_bytes() for f in NODE_FILES), version.encode())
    if modules.is_dir() and stamp.exists() and stamp.read_text().strip() == want:
        return modules, ""
    shutil.rmtree(nodedir, ignore_errors=True)
    nodedir.mkdir(parents=True)
    for f in NODE_FILES:
        shutil.copy2(f, nodedir / f.name)
    ok, log = run_logged(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=nodedir)
    if not ok:
        return None, log
    stamp.write_text(want + "\n")
    return modules, log


def pg_tool(name: str) -> str:
    """A PostgreSQL client program (createdb, dropdb) of the major under test: that of
    PG_SHRED_PG_CONFIG (scripts/test sets it), else of the pg_config on the PATH, else the PATH's."""
    pg_config = os.environ.get("PG_SHRED_PG_CONFIG") or shutil.which("pg_config")
    if pg_config:
        try:
            bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
            return str(Path(bindir) / name)
        except (OSError, subprocess.CalledProcessError):
            pass
    return shutil.which(name) or name


def database_name(example: str) -> str:
    return "pg_shred_clients_" + re.sub(r"[^a-z0-9]+", "_", example.lower())


def run_example(ex: Example, workdir: Path, cmd: list[str], timeout: float) -> tuple[bool, str]:
    db = database_name(ex.name)
    ok, log = run_logged([pg_tool("dropdb"), "--if-exists", db])
    if ok:
        ok, out = run_logged([pg_tool("createdb"), db])
        log += out
    if not ok:
        return False, "could not create the example's database:\n" + log
    env = dict(os.environ, PGDATABASE=db, PYTHONDONTWRITEBYTECODE="1")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        passed = proc.returncode == 0
        if not passed:
            out += f"\n(exit status {proc.returncode}, after {time.monotonic() - start:.1f} s)\n"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        passed = False
        out += f"\n(killed after the timeout of {timeout:g} s)\n"
    if passed:
        run_logged([pg_tool("dropdb"), "--if-exists", db])
    else:
        out += f"(its database {db} is kept for inspection)\n"
    return passed, out


def main(argv: list[str]) -> int:
    started = time.monotonic()
    missing = [v for v in ("PGHOST", "PGPORT", "PGUSER") if not os.environ.get(v)]
    if missing:
        print(f"run.py: set {', '.join(missing)} to the test server (see the header of {Path(__file__).name})", file=sys.stderr)
        return 2
    examples = extract(DOC)
    if not examples:
        print(f"run.py: no example in {DOC}", file=sys.stderr)
        return 2
    unknown = set(argv) - {e.name for e in examples}
    if unknown:
        print(f"run.py: no such example: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    selected = [e for e in examples if not argv or e.name in argv]
    filtered = len(examples) - len(selected)

    base = Path(os.environ.get("PG_SHRED_CLIENTS_DIR") or REPO / "target" / "clients").absolute()
    base.mkdir(parents=True, exist_ok=True)
    timeout = float(os.environ.get("PG_SHRED_CLIENTS_TIMEOUT", "180"))

    print(f"\nrunning {len(selected)} test{'' if len(selected) == 1 else 's'} (examples of {DOC.relative_to(REPO)})")
    passed = failed = ignored = 0
    failures: list[str] = []
    # runtime -> (its installed path or None, the install's log); installed at first use
    prepared: dict[str, tuple[Path | None, str]] = {}
    installers = {"python": (prepare_venv, "pip install"), "node": (prepare_node, "npm ci")}
    no_node = [t for t in ("node", "npm") if shutil.which(t) is None]
    with tempfile.TemporaryDirectory(prefix="pg_shred_clients.") as tmp:
        workdir = Path(tmp)
        for ex in selected:
            (workdir / ex.name).write_text(ex.code, encoding="utf-8")
        for ex in selected:
            label = f"test {ex.name} ..."
            if ex.runtime not in installers:
                print(f"{label} FAILED\n{DOC.name}:{ex.line}: no runtime for {Path(ex.name).suffix!r} (known: {', '.join(RUNTIMES)})")
                failed += 1
                failures.append(ex.name)
                continue
            if ex.runtime == "node" and no_node:
                print(f"{label} ignored, {' and '.join(no_node)} not found: node examples are skipped")
                ignored += 1
                continue
            prepare, installer = installers[ex.runtime]
            if ex.runtime not in prepared:
                prepared[ex.runtime] = prepare(base)
            path, log = prepared[ex.runtime]
            if path is None:
                print(f"{label} FAILED\n{installer} failed:\n{log}")
                prepared[ex.runtime] = (None, "(the output is above)\n")
                failed += 1
                failures.append(ex.name)
                continue
            if ex.runtime == "python":
                cmd = [str(path), ex.name]
            else:
                link = workdir / "node_modules"
                if not link.exists():
                    link.symlink_to(path, target_is_directory=True)
                cmd = ["node", ex.name]
            ok, out = run_example(ex, workdir, cmd, timeout)
            if ok:
                print(f"{label} ok")
                passed += 1
            else:
                print(f"{label} FAILED\n---- {ex.name} ({DOC.name}:{ex.line}) output ----\n{out.rstrip()}\n")
                failed += 1
                failures.append(ex.name)
            sys.stdout.flush()

    if failures:
        print("\nfailures:\n" + "".join(f"    {name}\n" for name in failures))
    status = "FAILED" if failed else "ok"
    print(f"\nclient examples finished in {time.monotonic() - started:.1f} s")
    print(f"test result: {status}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {filtered} filtered out")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

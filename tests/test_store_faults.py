"""What bad input and interruptions get from the restic archive store (``backup.store:
restic``, #22), against real restic and the real engine: one ``[error]`` line naming the
archive (or the store), exit 1, nothing changed; a backup killed at any point leaves
nothing that ``backups`` lists; three nights on the examples grow the store by little
more than what changed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Run, assert_one_error_line, finished, opskit, started, wait_until
from opskit.store import PASSWORD_FILE
from test_backup import sql, volume_path
from test_interrupt import tree
from test_store import archives, cut_root, du, snapshots
from testroot import BACKUPS, STATE, ns

pytestmark = pytest.mark.docker


def restic(root: Path, *args: str, stdin: bytes = b"") -> bytes:
    """restic itself against the root's store, as an operator runs it by hand."""
    repo, password = root / "backups" / ".restic", root / "state" / "restic-store-password"
    done = subprocess.run(
        ["restic", "--repo", str(repo), "--password-file", str(password), "--no-cache", *args],
        input=stdin, capture_output=True, check=True,
    )  # fmt: skip
    return done.stdout


def names(root: Path) -> list[str]:
    return [a["name"] for a in archives(root)]


def restic_running(repo: Path) -> bool:
    """Whether a restic process works on *repo* (one that outlived the opskit it served)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command and command[0].endswith(b"restic") and str(repo).encode() in command:
            return True
    return False


def commands(name: str) -> dict[str, tuple[str, ...]]:
    """What a user runs on the env (its archive *name* where one is asked for)."""
    return {
        "backup": ("backup", "cut", "dev"),
        "backups": ("backups", "cut", "dev"),
        "verify": ("verify", "cut", "dev", "--name", name),
        "restore": ("restore", "cut", "dev", "--name", name, "--yes"),
    }


def damage_a_pack(root: Path) -> Callable[[], None]:
    """Flip bytes in the biggest pack file of the store; return what puts them back."""
    packs = [p for p in (root / "backups" / ".restic" / "data").rglob("*") if p.is_file()]
    pack = max(packs, key=lambda p: p.stat().st_size)
    kept = pack.read_bytes()
    pack.chmod(0o600)
    with pack.open("r+b") as handle:
        handle.seek(len(kept) // 2)
        handle.write(bytes(b ^ 0xFF for b in kept[len(kept) // 2 : len(kept) // 2 + 64]))
    return lambda: pack.write_bytes(kept)


@pytest.fixture
def two_nights(tmp_path: Path) -> Iterator[Path]:
    """The ``cut`` root (small data) with two archives in the restic store; not started:
    backups of a path and refused restores need no running service."""
    root = cut_root(tmp_path, "restic", files=3)
    for night in (1, 2):
        (root / "cut" / "dev" / "data" / "index.html").write_text(f"night {night}\n")
        run = opskit("backup", "cut", "dev", "--root", str(root))
        assert run.returncode == 0, run.stderr
    yield root
    opskit("destroy", "cut", "dev", "--yes", "--root", str(root))


def test_bad_input_gets_one_line_naming_the_archive_and_changes_nothing(
    two_nights: Path,
) -> None:
    """Each fault in turn, each command a user runs: one line, exit 1, and afterwards the
    data, the listed archives and the repository (``restic check``) as they were."""
    root, args = two_nights, ["--root", str(two_nights)]
    data = root / "cut" / "dev" / "data"
    newest, oldest = names(root)
    store = str(root / "backups" / ".restic")
    password = root / "state" / "restic-store-password"
    before = tree(data), names(root), {s["id"] for s in snapshots(root)}

    def refused(command: str, name: str, *fragments: str) -> Run:
        run = opskit(*commands(name)[command], *args)
        assert_one_error_line(run, *fragments)
        return run

    def unchanged() -> None:
        assert (tree(data), names(root), {s["id"] for s in snapshots(root)}) == before
        restic(root, "check")

    # The password file missing, then wrong: the store is named (no archive concerned).
    password.rename(password.with_suffix(".away"))
    for command in commands(newest):
        refused(command, newest, store, str(password))
    password.with_suffix(".away").rename(password)
    kept = password.read_bytes()
    password.write_text("not the password\n")
    for command in commands(newest):
        refused(command, newest, store, "wrong password")
    password.write_bytes(kept)
    unchanged()

    # A component written, its manifest never (a backup cut off): not listed, and asked
    # for by name, it is named as what it is.
    cut = "cut-dev-20261201T030000Z"  # an older night of the env
    tags = f"opskit,project=cut,env=dev,archive={cut},component=path-dev-data"
    restic(root, "backup", "--stdin", "--stdin-filename", f"/cut/dev/{cut}/path-dev-data",
           "--tag", tags, stdin=b"cut off")  # fmt: skip
    leftover = {s["id"] for s in snapshots(root)} - before[2]
    assert names(root) == before[1]
    for command in ("verify", "restore"):
        refused(command, cut, cut, "incomplete: its manifest was never written")
    restic(root, "forget", *leftover)
    unchanged()

    # An archive name that exists twice (two manifest snapshots of one name): every
    # command refuses, naming the archive and its two snapshots.
    first = next(s for s in snapshots(root) if f"archive={oldest}" in s["tags"] and
                 "component=manifest" in s["tags"])  # fmt: skip
    text = restic(root, "dump", first["id"], first["paths"][0])
    restic(root, "backup", "--stdin", "--stdin-filename", first["paths"][0],
           "--tag", ",".join(first["tags"]), stdin=text)  # fmt: skip
    twice = {s["id"] for s in snapshots(root)} - before[2]
    for command in commands(newest):
        run = refused(command, newest, oldest, "2 manifests", first["short_id"])
        assert [i for i in twice if i[:8] in run.stderr], run.stderr
    restic(root, "forget", *twice)
    unchanged()

    # A damaged pack: verify names each archive and component that reads it; restore
    # refuses before it changes anything (no safety backup either).
    put_back = damage_a_pack(root)
    damaged = opskit("verify", "cut", "dev", *args)
    assert damaged.returncode == 1, damaged.stderr
    lines = damaged.stderr.splitlines()
    assert lines and all(line.startswith("[error] cut-dev-") for line in lines), lines
    assert all(": path-dev-data: " in line for line in lines), lines
    assert "Traceback" not in damaged.stderr
    hit = [name for name in before[1] if any(f"[error] {name}:" in s for s in lines)]
    assert hit, lines
    refused("restore", hit[0], hit[0], "damaged, nothing was restored", "path-dev-data")
    assert (tree(data), names(root)) == before[:2]
    put_back()
    unchanged()

    # A manifest whose component was forgotten by hand: verify and restore name both.
    component = next(s for s in snapshots(root) if f"archive={newest}" in s["tags"] and
                     "component=path-dev-data" in s["tags"])  # fmt: skip
    restic(root, "forget", component["id"])
    before = before[0], before[1], before[2] - {component["id"]}
    for command in ("verify", "restore"):
        refused(command, newest, newest, "path-dev-data", "its snapshot is gone")
    unchanged()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/backups`` on a tmpfs of 12 MiB (unmounted afterwards)."""
    mount = tmp_path / "backups"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", str(mount)],
                   check=True)  # fmt: skip
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_store_on_a_full_disk_fails_loudly_and_keeps_what_it_had(
    tmp_path: Path, small_disk: Path
) -> None:
    root = cut_root(tmp_path, "restic", files=2)
    data, args = root / "cut" / "dev" / "data", ["--root", str(root)]
    assert opskit("start", "cut", "dev", *args).returncode == 0
    try:
        wait_until(lambda: opskit("health", "cut", "dev", *args).returncode == 0, 60)
        first = opskit("backup", "cut", "dev", *args)
        assert first.returncode == 0, first.stderr
        expected = tree(data)
        for i in range(2, 6):  # 4 MiB more, on a disk with 1 MiB left
            (data / f"blob-{i:03}.bin").write_bytes(os.urandom(1 << 20))
        filler = small_disk / "filler"
        free = shutil.disk_usage(small_disk).free
        filler.write_bytes(b"\0" * (free - (1 << 20)))
        full = opskit("backup", "cut", "dev", *args)
        assert_one_error_line(full, "cut-dev-", "no space left on device")
        assert names(root) == [a for a in names(root)]  # listing works on a full disk
        listed = names(root)
        assert len(listed) == 1, listed
        restic(root, "check")
        assert opskit("verify", "cut", "dev", *args).returncode == 0

        filler.unlink()  # space freed: the next backup works, and forgets the leftovers
        run = opskit("backup", "cut", "dev", *args)
        assert run.returncode == 0, run.stderr
        assert len(names(root)) == 2
        assert len(snapshots(root)) == 4
        restore = opskit("restore", "cut", "dev", "--name", listed[0], "--yes", *args)
        assert restore.returncode == 0, restore.stderr
        assert tree(data) == expected
        assert opskit("verify", "cut", "dev", *args).returncode == 0
    finally:
        opskit("destroy", "cut", "dev", "--yes", *args)


def repository_bytes(repo: Path) -> int:
    """Bytes of the pack files in *repo* (what a backup adds as it goes)."""
    total = 0
    for sub in os.scandir(repo / "data"):
        for entry in os.scandir(sub.path):
            with contextlib.suppress(OSError):  # renamed while we looked
                total += entry.stat().st_size
    return total


@pytest.mark.parametrize("share", [0.2, 0.5, 0.8], ids=["20%", "50%", "80%"])
def test_a_backup_killed_at_any_point_lists_nothing_partial(tmp_path: Path, share: float) -> None:
    """The moment is the repository's growth: the backup of 40 MiB of incompressible
    files adds about 40 MiB of packs; the process is killed once *share* of them are in.
    restic then dies of its closed status pipe (packs that no snapshot names stay until a
    prune), or it had read the whole stream and leaves a component's snapshot without a
    manifest, which the next backup forgets."""
    root = cut_root(tmp_path, "restic", files=1)
    data, repo, args = (
        root / "cut" / "dev" / "data",
        root / "backups" / ".restic",
        ["--root", str(root)],
    )
    first = opskit("backup", "cut", "dev", *args)
    assert first.returncode == 0, first.stderr
    earlier = names(root)
    size = 40 << 20
    for i in range(1, 41):
        (data / f"blob-{i:03}.bin").write_bytes(os.urandom(1 << 20))
    start = repository_bytes(repo)
    process = started("backup", "cut", "dev", *args)
    grown = 0
    while process.poll() is None and grown < share * size:
        time.sleep(0.005)
        grown = repository_bytes(repo) - start
    assert process.poll() is None, "the backup ended before the named point"
    process.send_signal(signal.SIGKILL)
    finished(process, 60)
    wait_until(lambda: not restic_running(repo), 60, 0.1, "restic ends with its opskit")
    assert names(root) == earlier  # nothing partial listed
    left = len(snapshots(root)) - 2  # restic died too (its status pipe), or made one
    print(f"killed at {grown / size:.0%} of the data in packs; {left} snapshots left")

    run = opskit("backup", "cut", "dev", *args, env={"OPSKIT_LOCK_TIMEOUT": "5"})
    assert run.returncode == 0, run.stderr
    assert len(names(root)) == 2
    # the leftovers are forgotten (the stderr says why not: the forget's warning)
    assert len(snapshots(root)) == 4, run.stderr
    verify = opskit("verify", "cut", "dev", *args)
    assert verify.returncode == 0, verify.stderr
    assert [a["verified"] for a in archives(root)] == ["ok", "ok"]


RESTIC_STORE = "backup:\n  store: restic\n  dir: {dir}\n"


def stored_bytes(repo: Path) -> int:
    """The bytes of the files in *repo*: what ``du -b`` says less its folders' own size
    (a restic repository has 256 empty data folders, 1 MiB of ``du`` before any data)."""
    return sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())


@pytest.fixture
def examples_in_a_store(examples_up: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The examples (root, store) with ``backup.store: restic`` in a backup root of their
    own and 4 MiB of uploads in two envs, as a small site has; all of it taken away
    afterwards, what the test changes too."""
    old = f"backup:\n  dir: {BACKUPS}\n"
    descriptors = {p: p.read_text() for p in examples_up.glob("*/project.yaml")}
    descriptors = {p: text for p, text in descriptors.items() if old in text}
    assert {p.parent.name for p in descriptors} == {"mdf", "seriousletter"}
    uploads = [examples_up / "mdf" / "dev" / "wp-content" / "uploads" / "night-1",
               examples_up / "seriousletter" / "uploads" / "prod" / "night-1"]  # fmt: skip
    blogname = "SELECT option_value FROM wp_options WHERE option_name='blogname'"
    name = sql(str(examples_up), "mdf", blogname).strip()
    password = STATE / PASSWORD_FILE  # the store's, made with the store unless there is one
    kept = password.exists()
    try:
        for path, text in descriptors.items():
            path.write_text(text.replace(old, RESTIC_STORE.format(dir=tmp_path)))
        for folder in uploads:
            folder.mkdir()
            for i in range(4):  # incompressible, as photos are
                (folder / f"photo-{i}.jpg").write_bytes(os.urandom(512 << 10))
        yield examples_up, tmp_path / ".restic"
    finally:
        for path, text in descriptors.items():
            path.write_text(text)
        for folder in uploads:
            shutil.rmtree(folder, ignore_errors=True)
        sql(str(examples_up), "mdf", f"UPDATE wp_options SET option_value='{name}' "
            "WHERE option_name='blogname'")  # fmt: skip
        sql(str(examples_up), "seriousletter", "DELETE FROM letters WHERE subject LIKE 'night 2%'")
        for added in volume_path(f"{ns('mdf-dev')}_media").glob("night-2-*"):
            added.unlink()
        if not kept:
            password.unlink(missing_ok=True)


def test_three_nights_grow_the_store_by_little_more_than_what_changed(
    examples_in_a_store: tuple[Path, Path],
) -> None:
    """Night 2 after a few rows and files, night 3 with nothing changed: each adds less
    than 10 % of the first night's store, night 3 under 1 % (the goals of #22); mdf prod
    is left out (it only stops its mail service for the backup, which takes time). Measured
    as the repository's bytes (``du -b`` counts 1 MiB of empty restic folders too)."""
    root, repo = examples_in_a_store
    sizes, folders = [], []
    for night in (1, 2, 3):
        started_at = time.monotonic()
        for scope in (("mdf", "dev"), ("seriousletter",)):  # mdf prod only stops its mail
            run = opskit("backup", *scope, "--root", str(root), timeout=600)
            assert run.returncode == 0, run.stderr
        sizes.append(stored_bytes(repo))
        folders.append(du(repo))
        print(f"night {night}: {time.monotonic() - started_at:.1f} s, store {sizes[-1]} bytes "
              f"(du -b {folders[-1]}), {len(list((repo / 'snapshots').iterdir()))} snapshots")  # fmt: skip
        if night == 1:  # a few rows and a few files
            sql(str(root), "mdf", "UPDATE wp_options SET option_value='night 2' "
                "WHERE option_name='blogname'")  # fmt: skip
            sql(str(root), "seriousletter", "INSERT INTO letters (subject, body) "
                "VALUES ('night 2', 'a few rows'), ('night 2 again', 'x')")  # fmt: skip
            media = volume_path(f"{ns('mdf-dev')}_media")
            for i in range(3):
                (media / f"night-2-{i}.txt").write_text(f"a new file {i}\n")
            (root / "mdf" / "dev" / "wp-content" / "uploads" / "night-1" / "notes.txt").write_text(
                "a new file\n"
            )
    grown = [sizes[1] - sizes[0], sizes[2] - sizes[1]]
    print(f"grown by {grown} bytes: {[f'{g / sizes[0]:.2%}' for g in grown]} of the first night")
    assert grown[1] < sizes[0] / 100, (sizes, grown)
    assert grown[0] < sizes[0] / 10, (sizes, grown)  # paths and volumes are trees
    assert folders[2] - folders[0] < folders[0] / 10  # as du says it, too


@pytest.mark.parametrize(
    "stderr, said",
    [
        ("Fatal: unable to save snapshot: no space left on device\n", "Fatal: unable to save"),
        (
            "error: write /srv/repo/data/ab/abcd: no space left on device\n"
            "panic: write /srv/repo/data/ab/abcd: no space left on device\n\n"
            "goroutine 1 [running]:\n"
            "github.com/restic/restic/internal/repository.(*Repository).Flush(0xc000123, {0x1})\n"
            "\t/build/restic/internal/repository/repository.go:512 +0x1a5\n"
            "main.main()\n\t/build/restic/cmd/restic/main.go:98 +0x3b\n"
            "runtime.goexit()\n\t/usr/lib/go-1.19/src/runtime/asm_amd64.s:1594 +0x1\n",
            "panic: write /srv/repo/data/ab/abcd: no space left on device",
        ),
        (
            "load index 1234: no space left on device\n"
            "created by golang.org/x/sync/errgroup.(*Group).Go\n"
            "\t/build/vendor/golang.org/x/sync/errgroup/errgroup.go:72 +0xa5\n",
            "load index 1234: no space left on device",
        ),
        (  # restic copy into a full target: the error, then its stack (no call arguments)
            "write /srv/repo/data/f1/f18d-tmp-2811: no space left on device\n"
            "github.com/restic/restic/internal/backend/local.(*Local).Save\n"
            "\tgithub.com/restic/restic/internal/backend/local/local.go:170\n"
            "github.com/cenkalti/backoff.RetryNotify\n"
            "\tgithub.com/cenkalti/backoff/retry.go:34\n"
            "golang.org/x/sync/errgroup.(*Group).Go.func1\n"
            "\tgolang.org/x/sync/errgroup/errgroup.go:75\n"
            "runtime.goexit\n"
            "\truntime/asm_amd64.s:1594\n",
            "write /srv/repo/data/f1/f18d-tmp-2811: no space left on device",
        ),
        ("", "restic failed"),
    ],
    ids=["fatal", "panic with a stack trace", "trace without panic", "error stack", "nothing"],
)
def test_what_restic_said_is_its_error_never_a_stack_frame(stderr: str, said: str) -> None:
    from opskit.restic import last_line

    assert last_line(stderr).startswith(said)

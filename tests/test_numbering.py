"""R8 in a long-lived process: the scenes folder followed by inotify stays exact.

What a folder's followed listing must survive (review findings of this round,
each failing on the first version of the follower): changes drained by another
FileLog while a listing is being made, a watch removed while another listing
takes it, an interrupt inside a drain, watches left in the kernel by dropped
listings, a folder on a filesystem inotify cannot see whole, and a kept log fd
or reference lock that leaks or is mislabelled.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from eventstore.filelog import FileLog, numbering, views
from eventstore.filelog.paths import BatchPaths, Layout
from tests.helpers import scene
from tests.log_contract import BATCH, appended

B = BATCH


def body(folder: Path, version: int) -> None:
    (folder / f"{B}.v{version:03d}.json").write_bytes(b"{}")


def paths_in(root: Path) -> BatchPaths:
    paths = Layout.of("show", root).batch(B)
    paths.scenes_dir.mkdir(parents=True, exist_ok=True)
    return paths


def followed(paths: BatchPaths, listings: numbering.Listings) -> None:
    """A listing of the folder that follows it (what a second listing makes)."""
    listing = numbering._list_folder(paths.scenes_dir, listings, follow=True)
    assert listing is not None and listing.watch is not None


def kernel_watches() -> int:
    return Path(f"/proc/self/fdinfo/{numbering._notify.fd}").read_text().count("inotify wd:")


@pytest.fixture
def listdir_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Set ``hook[0]`` to a function run right after each ``os.listdir`` (then removed)."""
    hook: list[object] = []
    real = os.listdir

    def listdir(path: str | os.PathLike[str]) -> list[str]:
        names = real(path)
        if hook:
            action = hook.pop()
            assert callable(action)
            action(path)
        return names

    monkeypatch.setattr(os, "listdir", listdir)
    yield hook


def test_a_change_drained_by_another_filelog_while_a_listing_is_made_is_kept(
    tmp_path: Path, listdir_hook: list[object]
) -> None:
    mine, other = paths_in(tmp_path / "a"), paths_in(tmp_path / "b")
    body(mine.scenes_dir, 1)
    theirs = numbering.Listings()  # another FileLog (another project) in this process
    followed(other, theirs)

    def meanwhile(path: object) -> None:
        body(mine.scenes_dir, 40)  # a crashed writer's orphan, just after the listing
        numbering.highest_on_disk(other, theirs)  # another thread drains the queue

    listdir_hook.append(meanwhile)
    listings = numbering.Listings()
    followed(mine, listings)
    assert numbering.highest_on_disk(mine, listings) == 40


def test_the_same_at_store_level_numbers_above_the_orphan(
    tmp_path: Path, listdir_hook: list[object]
) -> None:
    a = SceneVersionStore("show", 1, root=tmp_path / "a")
    b = SceneVersionStore("show", 1, root=tmp_path / "b")  # another project, same process
    for shots in (1, 2, 3):
        b.write_scene_candidate(B, scene(shots=shots))  # b's folder is followed
    a.write_scene_candidate(B, scene(shots=1))
    a.write_scene_candidate(B, scene(shots=2))  # a's first listing
    scenes_a = tmp_path / "a" / "show" / "ep_001" / "scenes"

    def meanwhile(path: object) -> None:
        (scenes_a / f"{B}.v040.json").write_bytes(scene(shots=7).to_json())
        b.write_scene_candidate(B, scene(shots=9))  # another thread's command

    listdir_hook.append(meanwhile)
    # Listed again, now followed: the orphan placed while it listed is seen at once.
    assert a.write_scene_candidate(B, scene(shots=3)) == 41
    assert a.write_scene_candidate(B, scene(shots=4)) == 42


def test_a_watch_removed_while_another_listing_takes_it_is_not_followed_blind(
    tmp_path: Path, listdir_hook: list[object]
) -> None:
    paths = paths_in(tmp_path)
    body(paths.scenes_dir, 1)
    first = numbering.Listings()
    followed(paths, first)
    first.close()

    def meanwhile(path: object) -> None:
        body(paths.scenes_dir, 2)
        with numbering._notify.guard:
            numbering._notify.drain()

    listdir_hook.append(meanwhile)
    second = numbering.Listings()
    followed(paths, second)
    body(paths.scenes_dir, 50)
    assert numbering.highest_on_disk(paths, second) == 50


def test_an_interrupt_inside_a_drain_ends_the_following_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = paths_in(tmp_path)
    body(paths.scenes_dir, 1)
    listings = numbering.Listings()
    followed(paths, listings)
    body(paths.scenes_dir, 10)
    body(paths.scenes_dir, 20)
    real = numbering._Listing.added

    def interrupted(self: numbering._Listing, name: str) -> None:
        raise KeyboardInterrupt  # Ctrl-C in a session that keeps the store

    monkeypatch.setattr(numbering._Listing, "added", interrupted)
    with pytest.raises(KeyboardInterrupt):
        numbering.highest_on_disk(paths, listings)
    monkeypatch.setattr(numbering._Listing, "added", real)
    assert numbering.highest_on_disk(paths, listings) == 20


def test_listings_closed_or_dropped_leave_no_watch_in_the_kernel(tmp_path: Path) -> None:
    with numbering._notify.guard:
        numbering._notify.drain()
    for _ in range(20):  # warm: the instance exists
        followed(paths_in(tmp_path / "warm"), numbering.Listings())
    gc.collect()
    with numbering._notify.guard:
        numbering._notify.drain()
    before = kernel_watches()
    for i in range(50):
        listings = numbering.Listings()
        followed(paths_in(tmp_path / f"c{i}"), listings)
        listings.close()  # forget(), the LIMIT
    for i in range(50):
        followed(paths_in(tmp_path / f"d{i}"), numbering.Listings())  # a FileLog dropped
    gc.collect()
    with numbering._notify.guard:
        numbering._notify.drain()
    assert kernel_watches() == before


def test_only_a_local_filesystem_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    followed(paths_in(tmp_path / "first"), numbering.Listings())  # the instance exists
    assert numbering._notify.local(tmp_path)  # the test's own disk
    assert numbering._notify.local(Path("/dev/shm"))  # tmpfs
    assert not numbering._notify.local(Path("/proc"))  # not a filesystem inotify sees whole
    assert not numbering._notify.local(tmp_path / "missing")
    # A folder inotify cannot see whole (NFS: other hosts' writes) keeps the mtime rule.
    monkeypatch.setattr(numbering._notify, "local", lambda folder: False)
    store = SceneVersionStore("show", 1, root=tmp_path)
    for shots in range(1, 5):
        store.write_scene_candidate(B, scene(shots=shots))
    listings = store.log._mine().listings  # type: ignore[attr-defined]
    assert listings is not None
    assert all(listing.watch is None for listing in listings.by_folder.values())
    body(tmp_path / "show" / "ep_001" / "scenes", 30)
    assert store.write_scene_candidate(B, scene(shots=5)) == 31


def test_a_name_with_a_newline_is_not_a_body_and_takes_nothing_with_it(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    listings = numbering.Listings()
    followed(paths, listings)
    folder = paths.scenes_dir
    (folder / "junk").touch()
    body(folder, 5)
    body(folder, 3)
    assert numbering.highest_on_disk(paths, listings) == 5
    odd = folder / f"junk\n{B}.v005.json"
    odd.touch()
    odd.unlink()
    (folder / f"{B}.v003.json").unlink()  # a body event of B: its highest is counted again
    assert numbering.highest_on_disk(paths, listings) == 5


def test_a_name_with_a_newline_present_when_listed_leaves_no_phantom(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    odd = paths.scenes_dir / f"junk\n{B}.v090.json"
    odd.touch()
    listings = numbering.Listings()
    followed(paths, listings)
    odd.unlink()
    body(paths.scenes_dir, 1)
    assert numbering.highest_on_disk(paths, listings) == 1


def test_an_interrupt_while_a_listing_replays_its_changes_leaves_no_watch(
    tmp_path: Path, listdir_hook: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    followed(paths_in(tmp_path / "warm"), numbering.Listings())
    gc.collect()
    with numbering._notify.guard:
        numbering._notify.drain()
    before = kernel_watches()
    paths = paths_in(tmp_path / "p")

    def interrupted(self: numbering._Listing, name: str) -> None:
        raise KeyboardInterrupt

    def meanwhile(path: object) -> None:
        body(paths.scenes_dir, 2)
        with numbering._notify.guard:
            numbering._notify.drain()  # buffered in the listing being made
        monkeypatch.setattr(numbering._Listing, "added", interrupted)

    listdir_hook.append(meanwhile)
    with pytest.raises(KeyboardInterrupt):
        numbering._list_folder(paths.scenes_dir, numbering.Listings(), follow=True)
    monkeypatch.undo()
    gc.collect()
    with numbering._notify.guard:
        numbering._notify.drain()
    assert kernel_watches() == before


def test_a_reference_lock_is_entered_once(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    (paths.scenes_dir / f"{B}.versions.lock").touch()
    before = len(os.listdir("/proc/self/fd"))
    lock = views.reference_lock(paths, timeout=1.0)
    with lock, pytest.raises(RuntimeError, match="entered once"):
        lock.__enter__()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_reference_lock_never_entered_opens_nothing(tmp_path: Path) -> None:
    paths = paths_in(tmp_path)
    (paths.scenes_dir / f"{B}.versions.lock").touch()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        views.reference_lock(paths, timeout=1.0)
    assert len(os.listdir("/proc/self/fd")) == before
    with views.reference_lock(paths, timeout=1.0):
        assert len(os.listdir("/proc/self/fd")) == before + 1
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_kept_log_fd_is_labelled_with_the_file_it_wrote(tmp_path: Path) -> None:
    log = FileLog(Layout.of("show", tmp_path))
    with log.session(B) as session:
        session.append([appended(1)])
    path = log.path(B)
    refused = pytest.raises(Exception, match="changed while this command held the lock")
    with refused, log.session(B) as session:
        session.append([appended(2)])
        copy = path.with_name("copy")
        copy.write_bytes(path.read_bytes())
        os.replace(copy, path)  # the log replaced under the lock (a restore)
        session.append([appended(3)])  # refused: the session reloads the new file
    with log.session(B) as session:
        session.append([appended(3)])  # the kept fd is the old file's: not used here
    assert log.head(B)[0] == 3

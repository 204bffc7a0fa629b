"""Listing, manifest parsing and preflight without Spark: names, links, loops, CSV, locks.

Each test builds its input from real images (openclipart), with names made from bytes and
symlinks made here, and checks that every file is accounted for: listed once, or counted
as skipped, with the reason.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from conftest import OPENCLIPART, real_pngs
from sparkdup.config import load_config
from sparkdup.errors import InputError, OutputError
from sparkdup.listing import list_local, wanted_extensions
from sparkdup.manifest import parse_csv, refuse_colliding, resolve_paths
from sparkdup.preflight import LOCK_NAME, preflight, release_output

WANTED = wanted_extensions(["jpg", "png"], False)


def _put(path, src) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copy(src, path)


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """A folder with every kind of name and link a dataset may hold: (root bytes, expected
    {relative path bytes: expected error or None})."""
    base = tmp_path_factory.mktemp("messy")
    root = os.fsencode(str(base / "in[1]{a,b}"))
    png = real_pngs(OPENCLIPART, 1, seed=11)[0]
    ok_names = [b"_DSC1234.png", b"_incoming/a.png", b"caf\xe9.png", b"a[1].png", b"b{x,y}.png", b"c*?.png",
                b"d:e.png", b"e%41.png", b"f\\g.png", b"new\nline.png", b"sp ace 'q' \"dq\".PNG", b"x/y/z/deep.jpg"]
    for name in ok_names:
        _put(os.path.join(root, name), png)
    _put(os.path.join(root, b".hidden.png"), png)
    _put(os.path.join(root, b".git/x.png"), png)
    for name in (b"notes.txt", b"readme.TXT", b"icon.ico"):
        _put(os.path.join(root, name), png)
    # a sibling folder a glob reading of the input's name would pull in
    _put(os.fsencode(str(base / "in1a")) + b"/sibling.png", png)
    outside = os.fsencode(str(base / "outside"))
    _put(outside + b"/linked.png", png)
    os.symlink(b"..", os.path.join(root, b"x/loop"))                       # directory loop
    os.symlink(outside, os.path.join(root, b"linked_dir"))                 # folder outside, followed
    os.symlink(b"_DSC1234.png", os.path.join(root, b"alias.png"))          # a second name for one file
    os.symlink(b"does_not_exist.png", os.path.join(root, b"dead.png"))     # dangling
    expected = {n: None for n in ok_names}
    expected[b"linked_dir/linked.png"] = None
    expected[b"dead.png"] = "broken symbolic link: its target does_not_exist.png does not exist"
    return root, expected


def _spelled(root: bytes, rel: bytes) -> str:
    raw = os.path.join(root, rel)
    try:
        return "file:" + raw.decode("utf-8")
    except UnicodeDecodeError:
        return "file://" + urllib.parse.quote_from_bytes(raw, safe="/")


def test_every_file_listed_once_and_the_rest_counted(messy):
    root, expected = messy
    listing = list_local(os.fsdecode(root), WANTED, include_hidden=False)
    got = {e.path: e.error for e in listing.entries}
    assert got == {_spelled(root, rel): err for rel, err in expected.items()}
    assert listing.skipped_hidden == 2                      # .hidden.png and the .git folder
    assert dict(listing.skipped_extension) == {"txt": 2, "ico": 1}
    assert listing.aliases == 2                              # alias.png and the loop back to the root
    assert listing.non_utf8 == 1
    files_seen = len(expected) + 3 + listing.aliases - 1     # listed + skipped by extension (+ alias file)
    assert listing.listed == files_seen
    assert listing.counts()["skipped_ext_txt"] == 2
    by_path = {e.path: e for e in listing.entries}
    assert by_path[_spelled(root, b"_DSC1234.png")].local == os.path.join(root, b"_DSC1234.png")
    assert by_path[_spelled(root, b"caf\xe9.png")].path.startswith("file:///")
    assert by_path[_spelled(root, b"caf\xe9.png")].local == os.path.join(root, b"caf\xe9.png")


def test_hidden_and_all_pillow_formats_options(messy):
    root, expected = messy
    listing = list_local(os.fsdecode(root), wanted_extensions(["jpg", "png"], True), include_hidden=True)
    names = {os.path.relpath(e.local, root) for e in listing.entries}
    assert {b".hidden.png", b".git/x.png", b"icon.ico"} <= names
    assert listing.skipped_hidden == 0 and dict(listing.skipped_extension) == {"txt": 2}
    assert len(listing.entries) == len(expected) + 3


def test_extensions_must_be_a_list():
    with pytest.raises(InputError, match="ingest.extensions must be a list"):
        wanted_extensions("png", False)


def test_csv_manifest_rfc4180_bom_crlf():
    text = ('\ufeffpath,label,note\r\n'
            '/d/a.png,"cat, big","said ""hi"""\r\n'
            '/d/b.png,dog,"two\r\nlines"\r\n'
            '\r\n'
            '/d/c.png,,\r\n')
    df = parse_csv(text.encode("utf-8"), "m.csv")
    assert list(df.columns) == ["manifest_line", "path", "label", "note"]
    assert df["path"].tolist() == ["/d/a.png", "/d/b.png", "/d/c.png"]
    assert df["label"].tolist() == ["cat, big", "dog", ""]
    assert df["note"].tolist() == ['said "hi"', "two\r\nlines", ""]
    assert df["manifest_line"].tolist() == [2, 3, 6]


def test_csv_manifest_separator_and_encoding():
    data = "path;label\n/d/é.png;ça\n".encode("latin-1")
    with pytest.raises(InputError, match="not valid utf-8 at line 2"):
        parse_csv(data, "m.csv", ";")
    with pytest.raises(InputError, match="separator looks like ';': set ingest.manifest_separator"):
        parse_csv(data, "m.csv", ",", "latin-1")
    df = parse_csv(data, "m.csv", ";", "latin-1")
    assert df["path"].tolist() == ["/d/é.png"] and df["label"].tolist() == ["ça"]


def test_colliding_columns_are_refused_by_name():
    with pytest.raises(InputError, match="named like sparkdup's own output: status, image_id"):
        refuse_colliding(["path", "label", "status", "image_id", "mine"], ["image_id", "path", "label", "status"], "m")


def test_manifest_rows_all_kept_duplicates_empty_and_remote(tmp_path):
    manifest = str(tmp_path / "m.csv")
    data = ("path,label\n"
            "a.png,x\n"
            "./a.png,y\n"
            ",z\n"
            ",w\n"
            "http://example.invalid/a.png,v\n"
            "ftp://example.invalid/b.png,u\n"
            f"{tmp_path}/sub/../a.png,t\n").encode()
    rows = resolve_paths(None, parse_csv(data, manifest), manifest)
    assert len(rows) == 7
    first = "file:" + str(tmp_path / "a.png")
    assert rows["path"].tolist()[:2] == [first, first] and rows["path"].iloc[6] == first
    assert rows["list_status"].tolist() == [None, "duplicate", "unsupported", "unsupported", "unsupported",
                                            "unsupported", "duplicate"]
    assert rows["list_error"].iloc[1].startswith("same file as manifest line 2")
    assert rows["list_error"].iloc[2] == "empty path in the manifest"
    assert rows["list_error"].iloc[4].startswith("http: URLs are not read")
    assert rows["label"].tolist() == ["x", "y", "z", "w", "v", "u", "t"]
    # ids stay unique: repeated paths (empty ones included) are salted with their line
    keys = list(zip(rows["path"], rows["id_salt"].astype(object).where(rows["id_salt"].notna(), None)))
    assert len(set(keys)) == 7


def _args(tmp_path, **kw):
    base = dict(input=str(tmp_path / "in"), manifest=None, output=str(tmp_path / "out"), glob=False)
    return argparse.Namespace(**(base | kw))


def test_preflight_input_and_output_mistakes(tmp_path):
    cfg = load_config()
    (tmp_path / "in").mkdir()
    with pytest.raises(InputError, match=r"input not found: .*nope\*\.png \(it looks like a glob: add --glob\)"):
        preflight(None, cfg, _args(tmp_path, input=str(tmp_path / "nope*.png")))
    with pytest.raises(InputError, match="exactly one"):
        preflight(None, cfg, _args(tmp_path, manifest="m.csv"))
    with pytest.raises(InputError, match="manifest not found"):
        preflight(None, cfg, _args(tmp_path, input=None, manifest=str(tmp_path / "m.csv")))
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    with pytest.raises(InputError, match="input is a broken symbolic link"):
        preflight(None, cfg, _args(tmp_path, input=str(tmp_path / "dangling")))
    (tmp_path / "file_out").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        preflight(None, cfg, _args(tmp_path, output=str(tmp_path / "file_out")))
    with pytest.raises(OutputError, match="is a file, so the folder cannot be created"):
        preflight(None, cfg, _args(tmp_path, output=str(tmp_path / "file_out" / "sub")))
    preflight(None, cfg, _args(tmp_path, output=str(tmp_path / "new" / "out")))  # created
    assert (tmp_path / "new" / "out" / LOCK_NAME).exists()
    release_output(str(tmp_path / "new" / "out"))


def hold_output(input_dir, output_dir, seconds: int) -> subprocess.Popen:
    """Another process that passed preflight on output_dir and holds its lock for `seconds`;
    it has printed 'held' once this returns."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import argparse, time; from sparkdup.config import load_config; from sparkdup.preflight import preflight; "
        f"preflight(None, load_config(), argparse.Namespace(input={str(input_dir)!r}, manifest=None, "
        f"output={str(output_dir)!r}, glob=False)); print('held', flush=True); time.sleep({seconds})")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_run_on_one_output_fails_in_one_line_and_kill_9_frees_it(tmp_path):
    cfg = load_config()
    (tmp_path / "in").mkdir()
    old = tmp_path / "out" / "_checkpoints" / "0b1d-dead-run"
    old.mkdir(parents=True)
    (old / "rdd-1").write_text("x")
    holder = hold_output(tmp_path / "in", tmp_path / "out", 60)
    try:
        assert not old.exists()  # the dead run's checkpoints were cleaned by the run holding the lock
        with pytest.raises(OutputError, match=rf"another sparkdup run \(pid {holder.pid}, started .*\) is writing "
                                              "to --output .*: wait for it to finish, or use another --output"):
            preflight(None, cfg, _args(tmp_path))
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    time.sleep(0.1)
    preflight(None, cfg, _args(tmp_path))  # the kernel released the dead run's lock
    release_output(str(tmp_path / "out"))

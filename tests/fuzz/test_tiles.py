"""Tile paths, hash tiles and entry bundles, mutated and random.

A published tiles directory of 300 entries (a full tile, a partial one and
a level 1 tile) has one file of level 0 or its checkpoint mutated at a
time. The audit must then raise
``VerificationError`` or report a ``log.*`` finding, and the monitor (which
reads hash tiles, not bundles) must not report a mutated hash tile or
checkpoint as consistent. Tile paths have one spelling on the server.
"""

import functools
import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InvalidRequest
from ledger.tiles import format_tile_path, parse_tile_path
from tests.fuzz.mutations import FAST, SLOW, mutated
from tests.verifier.signing import TestLog, TestSigner
from tests.verifier.tiles_writer import bundle, write_tiles
from verifier import (
    Monitor,
    TiledLog,
    VerificationError,
    audit_log,
    open_checkpoint,
)
from verifier.note import parse_verifier_key
from verifier.tiles import split_entry_bundle, tile_path

ORIGIN = "agentgate.example/fuzz-tiles"
SIGNER = TestSigner.from_seed_text(ORIGIN, "fuzz tests: tiles")
KEY = parse_verifier_key(SIGNER.verifier_key)
LOG = TestLog(SIGNER, ORIGIN, 300)
# The audit and a monitor's first check read level 0 only; a client that
# computes a proof from a higher tile checks it against a signed root.
HASH_FILES = ["checkpoint", "tile/0/000", "tile/0/001.p/44"]
BUNDLE_FILES = ["tile/entries/000", "tile/entries/001.p/44"]


@functools.cache
def published() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="agentgate-fuzz-tiles-"))
    write_tiles(directory, LOG.entries, LOG.checkpoint())
    return directory


def same_meaning(name: str, original: bytes, data: bytes) -> bool:
    """Return True when ``data`` is ``original``, or a checkpoint that opens
    to the same origin, size and root.

    A signature line repeated word for word opens as the note did: Go's
    ``note.Open`` skips a second signature by the same key, and so does the
    verifier.
    """
    if data == original:
        return True
    if name != "checkpoint":
        return False
    try:
        mutated_checkpoint, _ = open_checkpoint(data, [KEY], ORIGIN)
    except VerificationError:
        return False
    checkpoint, _ = open_checkpoint(original, [KEY], ORIGIN)
    return checkpoint == mutated_checkpoint


def with_file(name: str, data: bytes) -> Path:
    """Return a copy of the published directory with ``name`` replaced."""
    directory = Path(tempfile.mkdtemp(prefix="agentgate-fuzz-tiles-"))
    shutil.copytree(published(), directory, dirs_exist_ok=True)
    (directory / name).write_bytes(data)
    return directory


@st.composite
def mutated_files(draw, names):
    name = draw(st.sampled_from(names))
    original = (published() / name).read_bytes()
    return name, original, draw(mutated(original, max_edits=2))


@SLOW
@given(mutated_files(HASH_FILES + BUNDLE_FILES))
def test_mutated_tile_or_bundle_fails_audit(case):
    name, original, data = case
    directory = with_file(name, data)
    try:
        result = audit_log(str(directory), [KEY])
    except VerificationError:
        return
    finally:
        shutil.rmtree(directory)
    log_findings = [f for f in result.findings if f.kind.startswith("log.")]
    if same_meaning(name, original, data):
        assert log_findings == []
    else:
        assert log_findings, f"{name} changed but the audit found nothing"


@SLOW
@given(mutated_files(HASH_FILES))
def test_mutated_hash_tile_fails_monitor(case):
    name, original, data = case
    directory = with_file(name, data)
    state = directory.parent / (directory.name + ".state.json")
    try:
        report = Monitor(TiledLog(str(directory)), [KEY], state).check(now=2 * 10**9)
    finally:
        shutil.rmtree(directory)
        state.unlink(missing_ok=True)
        Path(f"{state}.leaves").unlink(missing_ok=True)
    assert report.ok == same_meaning(name, original, data), report.message


def test_repeated_signature_line_opens_unchanged():
    # Found by fuzzing: a checkpoint whose signature line is repeated passes
    # the audit and the monitor. It is the same signed checkpoint.
    original = (published() / "checkpoint").read_bytes()
    signature_line = original.split(b"\n\n")[1]
    data = original + signature_line

    assert same_meaning("checkpoint", original, data)
    directory = with_file("checkpoint", data)
    try:
        result = audit_log(str(directory), [KEY])
    finally:
        shutil.rmtree(directory)
    assert [f for f in result.findings if f.kind.startswith("log.")] == []


@FAST
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_entry_bundle_round_trip(entries):
    assert split_entry_bundle(bundle(entries)) == (entries, None)


@FAST
@given(st.binary(max_size=600))
def test_random_entry_bundle_split_cleanly(data):
    entries, problem = split_entry_bundle(data)
    if problem is None:
        assert bundle(entries) == data
    else:
        assert bundle(entries) == data[: len(bundle(entries))]


levels = st.sampled_from(["0", "1", "9", "63", "64", "00", "01", "entries", "-1", ""])
elements = st.text(alphabet="x0123456789./p", max_size=24)


@FAST
@given(levels | st.text(max_size=4), elements | st.text(max_size=24))
def test_tile_path_has_one_spelling(level_text, index_text):
    try:
        tile = parse_tile_path(level_text, index_text)
    except InvalidRequest:
        return
    path = f"tile/{level_text}/{index_text}"
    assert format_tile_path(tile) == path
    assert tile_path(tile.level, tile.index, tile.width) == path

"""``agentgate publish`` output read by a tile reader written from the specs only.

The reader below follows C2SP tlog-tiles (https://c2sp.org/tlog-tiles), C2SP
signed-note and RFC 9162 section 2.1, and uses only the standard library
and ``cryptography``. It imports nothing from ``ledger`` or ``verifier``, so
a path rule or a hash that both of them got wrong in the same way still
fails here. The logs are written with the ledger's API and published with
the ``agentgate publish`` command.

The rules it implements:

- ``checkpoint``: origin, tree size and base64 root hash lines, a blank
  line, and signature lines ``— <name> <base64(key id || signature)>``;
  the key id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || key).
- ``tile/<L>/<N>``: the 256 hashes at tile level L (tree height 8 * L)
  with node indexes N * 256 to N * 256 + 255; a rightmost tile of W < 256
  hashes is ``tile/<L>/<N>.p/<W>``.
- ``<N>`` is written in groups of three decimal digits, all but the last
  prefixed with ``x``: 1234067 is ``x001/x234/067``.
- ``tile/entries/<N>[.p/<W>]``: the entries of level 0 tile N, each
  prefixed with its length as a big-endian uint16.
"""

import base64
import hashlib
import shutil

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from enforcement.cli import main
from ledger import Ledger, Signer

ORIGIN = "interop.test/tiles"
SIGNER = Signer.from_seed(ORIGIN, hashlib.sha256(b"tiles interop log key").digest())
TILE_WIDTH = 256
TILE_HEIGHT = 8


# -- the reader -------------------------------------------------------------------


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def index_path(index):
    """Write a tile index in 3-digit groups, all but the last prefixed with x."""
    groups = []
    while True:
        index, group = divmod(index, 1000)
        groups.insert(0, f"{group:03d}")
        if index == 0:
            break
    return "/".join(["x" + group for group in groups[:-1]] + [groups[-1]])


def tile_path(level, index, width):
    """Return ``tile/<level>/<index>[.p/<width>]``; level "entries" for bundles."""
    path = f"tile/{level}/{index_path(index)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def mth(hashes):
    """RFC 9162 section 2.1.1 MTH over already hashed leaves, written recursively."""
    if len(hashes) == 1:
        return hashes[0]
    split = 1
    while split * 2 < len(hashes):
        split *= 2
    return node_hash(mth(hashes[:split]), mth(hashes[split:]))


def parse_checkpoint(note, verifier_key):
    """Return (origin, size, root) after verifying the log's signature line."""
    name, key_id_hex, material = verifier_key.split("+")
    raw_key = base64.b64decode(material)
    assert raw_key[0] == 0x01, "an Ed25519 note key starts with type byte 0x01"
    key_id = hashlib.sha256(name.encode() + b"\n" + raw_key).digest()[:4]
    assert key_id.hex() == key_id_hex

    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    origin, size_line, root_line = text.split("\n")[:3]
    verified = False
    for line in signatures.rstrip("\n").split("\n"):
        signer, encoded = line.removeprefix("\u2014 ").split(" ")
        blob = base64.b64decode(encoded)
        if signer == name and blob[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(raw_key[1:]).verify(
                blob[4:], text.encode()
            )
            verified = True
    assert verified, "no signature line of the log key"
    return origin, int(size_line), base64.b64decode(root_line)


class SpecTileReader:
    """Reads a published directory the way a tlog-tiles client would."""

    def __init__(self, directory):
        self.directory = directory
        self.reads = []

    def tile(self, level, index, width):
        path = tile_path(level, index, width)
        self.reads.append(path)
        data = (self.directory / path).read_bytes()
        assert len(data) == 32 * width, f"{path}: {len(data)} bytes"
        return [data[i : i + 32] for i in range(0, len(data), 32)]

    def entries(self, index, width):
        path = tile_path("entries", index, width)
        data = (self.directory / path).read_bytes()
        entries, offset = [], 0
        while offset < len(data):
            length = int.from_bytes(data[offset : offset + 2], "big")
            entries.append(data[offset + 2 : offset + 2 + length])
            offset += 2 + length
        assert offset == len(data), f"{path}: a length prefix runs past the end"
        assert len(entries) == width, f"{path}: {len(entries)} entries, not {width}"
        return entries

    def subtree_hash(self, height, index, size):
        """Return the hash of the 2**height leaves from ``index * 2**height``.

        It is hash ``index`` at tree height ``height``. When the height is a
        multiple of 8, a tile contains it. Otherwise it is computed from
        2**(height % 8) hashes of one tile at the level below.
        """
        level, extra = divmod(height, TILE_HEIGHT)
        span = 1 << extra
        first = index * span
        tile_index = first // TILE_WIDTH
        level_size = size >> (TILE_HEIGHT * level)
        width = min(TILE_WIDTH, level_size - tile_index * TILE_WIDTH)
        hashes = self.tile(level, tile_index, width)
        start = first % TILE_WIDTH
        return mth(hashes[start : start + span])

    def root(self, size):
        """Compute the root of a tree of ``size`` leaves from the fewest tiles.

        The tree is its complete subtrees for the bits of ``size``, largest
        first, folded from the right (RFC 9162 section 2.1.1).
        """
        subtrees, offset = [], 0
        for height in reversed(range(size.bit_length())):
            if size >> height & 1:
                subtrees.append(self.subtree_hash(height, offset >> height, size))
                offset += 1 << height
        root = subtrees.pop()
        while subtrees:
            root = node_hash(subtrees.pop(), root)
        return root

    def check_every_tile(self, size):
        """Check all tiles of the tree: leaves from the bundles, levels from below.

        Returns the entries.
        """
        entries, level_hashes = [], []
        for index in range(-(-size // TILE_WIDTH)):
            width = min(TILE_WIDTH, size - index * TILE_WIDTH)
            bundle = self.entries(index, width)
            hashes = self.tile(0, index, width)
            assert hashes == [leaf_hash(entry) for entry in bundle], index
            entries += bundle
            level_hashes += hashes
        level = 1
        while size >> (TILE_HEIGHT * level):
            count = size >> (TILE_HEIGHT * level)
            above = []
            for index in range(-(-count // TILE_WIDTH)):
                width = min(TILE_WIDTH, count - index * TILE_WIDTH)
                hashes = self.tile(level, index, width)
                for position, value in enumerate(hashes):
                    node = index * TILE_WIDTH + position
                    below = level_hashes[node * TILE_WIDTH : (node + 1) * TILE_WIDTH]
                    assert value == mth(below), f"tile {level}/{index} hash {position}"
                above += hashes
            level_hashes = above
            level += 1
        return entries


# -- helpers ------------------------------------------------------------------------


def grow(database, size):
    """Append ``{"n":<leaf index>}`` records until the log has ``size`` leaves."""
    with Ledger.open(database, SIGNER) as ledger:
        while ledger.size < size:
            count = min(1000, size - ledger.size)
            first = ledger.size
            ledger.append_batch(
                [(b'{"n":%d}' % (first + i), None) for i in range(count)]
            )


def agentgate_publish(database, directory):
    result = CliRunner().invoke(
        main, ["publish", "--db", str(database), "--out", str(directory)]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


# -- tests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "index, expected",
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (1000000, "x001/x000/000"),
    ],
)
def test_index_path_rule(index, expected):
    assert index_path(index) == expected


def test_tile_path_rule():
    assert tile_path(0, 1234067, 256) == "tile/0/x001/x234/067"
    assert tile_path(1, 2, 17) == "tile/1/002.p/17"
    assert tile_path("entries", 5, 3) == "tile/entries/005.p/3"


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 513, 600])
def test_reader_gets_checkpoint_root(tmp_path, size):
    database, published = tmp_path / "log.db", tmp_path / "published"
    grow(database, size)

    note = agentgate_publish(database, published)

    origin, checkpoint_size, root = parse_checkpoint(note, str(SIGNER.verifier_key))
    assert (origin, checkpoint_size) == (ORIGIN, size)
    assert (published / "checkpoint").read_text() == note
    reader = SpecTileReader(published)
    assert reader.root(size) == root
    entries = reader.check_every_tile(size)
    assert mth([leaf_hash(entry) for entry in entries]) == root
    # Leaf 0 is the key record that creating the log sealed.
    assert b'"type":"key"' in entries[0]
    assert entries[1:] == [b'{"n":%d}' % n for n in range(1, size)]


def test_reader_uses_level_1_tiles(tmp_path):
    database, published = tmp_path / "log.db", tmp_path / "published"
    grow(database, 512)
    note = agentgate_publish(database, published)
    _, size, root = parse_checkpoint(note, str(SIGNER.verifier_key))
    reader = SpecTileReader(published)

    assert reader.root(size) == root

    # 512 leaves are two complete subtrees of 256: one level 1 tile of width 2.
    assert reader.reads == ["tile/1/000.p/2"]


def test_older_checkpoint_still_readable(tmp_path):
    database, published = tmp_path / "log.db", tmp_path / "published"
    grow(database, 300)
    old_note = agentgate_publish(database, published)
    grow(database, 700)

    new_note = agentgate_publish(database, published)

    key = str(SIGNER.verifier_key)
    _, old_size, old_root = parse_checkpoint(old_note, key)
    _, new_size, new_root = parse_checkpoint(new_note, key)
    reader = SpecTileReader(published)
    assert reader.root(new_size) == new_root
    reader.check_every_tile(new_size)
    # A client that has the size 300 checkpoint reads the partial tiles of
    # that size, which the second run left in place.
    assert reader.root(old_size) == old_root
    assert reader.check_every_tile(old_size)[-1] == b'{"n":299}'


def test_copied_directory_reads_the_same(tmp_path):
    """Static hosting copies files; nothing in the publication depends on its place."""
    database, published = tmp_path / "log.db", tmp_path / "published"
    grow(database, 257)
    note = agentgate_publish(database, published)
    copy = tmp_path / "web-root" / "log"
    shutil.copytree(published, copy)

    _, size, root = parse_checkpoint(note, str(SIGNER.verifier_key))

    assert SpecTileReader(copy).root(size) == root
    assert not list(copy.rglob("*.tmp"))


def test_altered_tile_changes_root(tmp_path):
    database, published = tmp_path / "log.db", tmp_path / "published"
    grow(database, 300)
    note = agentgate_publish(database, published)
    _, size, root = parse_checkpoint(note, str(SIGNER.verifier_key))
    tile = published / "tile/0/001.p/44"
    data = bytearray(tile.read_bytes())
    data[0] ^= 1
    tile.write_bytes(bytes(data))

    assert SpecTileReader(published).root(size) != root

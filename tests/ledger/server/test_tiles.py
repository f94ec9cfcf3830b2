"""C2SP tlog-tiles: paths, and tiles read back into the checkpoint's root.

The reader in this module follows https://c2sp.org/tlog-tiles and RFC 9162
directly and uses no ledger code. It fetches every tile of a tree of 70,000
leaves (the spec's own example) and checks each level against the one
below. It checks the leaf hashes against the entry bundles and recomputes
the signed root.
"""

import hashlib
import json

import httpx
import pytest

import verifier
from ledger import Signer, StoredTree
from ledger.errors import InvalidRequest
from ledger.storage import Store
from ledger.tiles import TilePath, format_tile_index, format_tile_path, parse_tile_path

from .conftest import ORIGIN, TEST_SEED, auth, record, start

SIZE = 70_000
LOG_KEY = str(Signer.from_seed(ORIGIN, TEST_SEED).verifier_key)


# -- a tile reader written from the spec ----------------------------------------


def index_path(n):
    """Encode a tile index in zero-padded 3-digit elements, all but the last x."""
    elements = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        elements.insert(0, f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(elements)


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def perfect_root(hashes):
    """Hash a power-of-two list of hashes pairwise up to one hash."""
    while len(hashes) > 1:
        hashes = [node(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def split(data):
    assert len(data) % 32 == 0
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def fetch_level(client, level, size):
    """Return every hash of ``level``: the full tiles, then the partial one."""
    count = size // 256**level
    hashes = []
    for n in range(count // 256):
        response = client.get(f"/tile/{level}/{index_path(n)}")
        assert response.status_code == 200, response.text
        assert len(response.content) == 256 * 32
        hashes.extend(split(response.content))
    if count % 256:
        path = f"/tile/{level}/{index_path(count // 256)}.p/{count % 256}"
        response = client.get(path)
        assert response.status_code == 200, response.text
        assert len(response.content) == (count % 256) * 32
        hashes.extend(split(response.content))
    return hashes


def tree_root(levels, size):
    """RFC 9162 root of ``size`` leaves from the tile levels.

    The tree splits into perfect subtrees from the left, one per set bit of
    ``size``. A subtree of 2**k leaves is 2**(k mod 8) consecutive hashes of
    tile level k div 8; the pieces fold together from the right.
    """
    pieces = []
    offset = 0
    for k in reversed(range(size.bit_length())):
        if size >> k & 1:
            level, rest = divmod(k, 8)
            first = offset // 256**level
            pieces.append(perfect_root(levels[level][first : first + 2**rest]))
            offset += 2**k
    root = pieces.pop()
    while pieces:
        root = node(pieces.pop(), root)
    return root


def read_bundle(data):
    entries = []
    while data:
        length = int.from_bytes(data[:2], "big")
        entries.append(data[2 : 2 + length])
        data = data[2 + length :]
    return entries


# -- a server over a tree of 70,000 leaves --------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A log of 70,000 leaves, written through the tree to skip the receipts."""
    directory = tmp_path_factory.mktemp("tiles")
    server = start(directory)
    server.stop()
    store = Store.open(directory / "log.db")
    tree = StoredTree.open(store)
    entries = [record(n) for n in range(1, SIZE)]
    for position in range(0, len(entries), 10_000):
        tree.append(entries[position : position + 10_000])
    store.close()
    server = start(directory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(big):
    with httpx.Client(base_url=big.base_url, timeout=30.0) as client:
        yield client


def test_tiles_rebuild_checkpoint_root(client):
    note = client.get("/checkpoint").text
    checkpoint = verifier.verify_checkpoint(note, [LOG_KEY], ORIGIN)
    assert checkpoint.size == SIZE

    levels = [fetch_level(client, level, SIZE) for level in range(3)]

    # The spec's example: 273 full level 0 tiles and a partial one of 112,
    # one full level 1 tile and a partial one of 17, a level 2 tile of 1.
    assert [len(hashes) for hashes in levels] == [273 * 256 + 112, 256 + 17, 1]
    assert tree_root(levels, SIZE) == checkpoint.root
    for level in (1, 2):
        for i, digest in enumerate(levels[level]):
            below = levels[level - 1][i * 256 : (i + 1) * 256]
            assert digest == perfect_root(below), f"level {level} hash {i}"


def test_entry_bundles_hash_to_level_0(client):
    leaf_hashes = fetch_level(client, 0, SIZE)
    entries = []
    last = SIZE // 256
    for n in range(last):
        bundle = client.get(f"/tile/entries/{index_path(n)}").content
        entries.extend(read_bundle(bundle))
    path = f"/tile/entries/{index_path(last)}.p/{SIZE % 256}"
    entries.extend(read_bundle(client.get(path).content))

    assert len(entries) == SIZE
    assert json.loads(entries[0])["type"] == "key"
    assert entries[1:3] == [record(1), record(2)]
    hashed = [hashlib.sha256(b"\x00" + entry).digest() for entry in entries]
    assert hashed == leaf_hashes


def test_older_partial_tile_is_prefix(client):
    """A partial tile of an earlier checkpoint is the prefix of the later one."""
    wide = client.get(f"/tile/0/{index_path(273)}.p/112").content
    narrow = client.get(f"/tile/0/{index_path(273)}.p/5")
    assert narrow.status_code == 200
    assert narrow.content == wide[: 5 * 32]


def test_full_tile_cache_headers(client):
    response = client.get("/tile/1/000")

    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_partial_tile_cache_headers(client):
    response = client.get("/tile/1/000.p/17")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"


def test_checkpoint_is_not_cached(client):
    response = client.get("/checkpoint")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"


def test_entry_bundle_is_gzipped_on_request(client):
    response = client.get("/tile/entries/000", headers={"Accept-Encoding": "gzip"})

    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert read_bundle(response.content)[1] == record(1)


def test_entry_bundle_plain_without_gzip(client):
    with client.stream(
        "GET", "/tile/entries/000", headers={"Accept-Encoding": "identity"}
    ) as response:
        raw = response.read()
    assert "content-encoding" not in response.headers
    assert read_bundle(raw)[1] == record(1)


@pytest.mark.parametrize(
    "path",
    [
        "/tile/0/273",  # level 0 tile 273 is partial: 112 hashes
        "/tile/0/273.p/113",
        "/tile/0/274.p/1",
        "/tile/1/001",
        "/tile/1/001.p/18",
        "/tile/2/000",
        "/tile/3/000.p/1",
        "/tile/63/000.p/1",
        "/tile/entries/273",
        "/tile/entries/274.p/1",
    ],
)
def test_tile_past_tree_is_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "tile_not_found"
    assert body["detail"] == (
        f"{path[1:]} is not in the tree of size {SIZE}; request only tiles that a "
        "checkpoint covers"
    )


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/tile/00/000", "tile level '00' is invalid"),
        ("/tile/64/000", "tile level '64' is invalid"),
        ("/tile/x/000", "tile level 'x' is invalid"),
        ("/tile/0/5", "tile index '5' is invalid"),
        ("/tile/0/0005", "tile index '0005' is invalid"),
        ("/tile/0/x000/005", "tile index 'x000/005' is invalid"),
        ("/tile/0/005/x001", "tile index '005/x001' is invalid"),
        ("/tile/0/000.p/0", "partial tile width '0' is invalid"),
        ("/tile/0/000.p/256", "partial tile width '256' is invalid"),
        ("/tile/0/000.p/017", "partial tile width '017' is invalid"),
        ("/tile/0/000.p", "tile index '000.p' is invalid"),
        ("/tile/entries/x1/000", "tile index 'x1/000' is invalid"),
    ],
)
def test_invalid_tile_path_is_400(client, path, detail):
    response = client.get(path)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_tile_path"
    assert body["detail"].startswith(detail)


def test_entry_too_large_for_bundle(start_server):
    """Entries over 65535 bytes are appended but their bundle is refused."""
    server = start_server()
    entry = json.dumps({"pad": "x" * 70_000}, separators=(",", ":")).encode()
    response = httpx.post(server.base_url + "/v1/entries", content=entry,
                          headers=auth())
    assert response.status_code == 200

    bundle = httpx.get(server.base_url + "/tile/entries/000.p/2")
    tile = httpx.get(server.base_url + "/tile/0/000.p/2")

    assert bundle.status_code == 501
    assert bundle.json() == {
        "error": "entry_too_large_for_bundle",
        "detail": f"entry 1 is {len(entry)} bytes, but an entry bundle holds "
        "entries of at most 65535 bytes; read it from /v1/entries?start=1&end=2",
    }
    assert tile.status_code == 200
    assert split(tile.content)[1] == hashlib.sha256(b"\x00" + entry).digest()


# -- tile paths -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "text"),
    [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"),
     (1234067, "x001/x234/067"), (10**9, "x001/x000/x000/000")],
)
def test_format_tile_index(index, text):
    assert format_tile_index(index) == text
    assert index_path(index) == text


@pytest.mark.parametrize(
    ("level", "index", "tile"),
    [
        ("0", "x001/x234/067", TilePath(0, 1234067, 256)),
        ("1", "000.p/17", TilePath(1, 0, 17)),
        ("63", "x002/000.p/255", TilePath(63, 2000, 255)),
        ("entries", "005", TilePath(None, 5, 256)),
        ("entries", "x001/000.p/1", TilePath(None, 1000, 1)),
    ],
)
def test_parse_tile_path(level, index, tile):
    parsed = parse_tile_path(level, index)

    assert parsed == tile
    assert format_tile_path(parsed) == f"tile/{level}/{index}"
    assert parsed.is_partial == (tile.width < 256)
    assert parsed.is_entries == (level == "entries")


@pytest.mark.parametrize("index", [-1, 1.0, True, "5"])
def test_format_tile_index_rejects(index):
    with pytest.raises(InvalidRequest, match="tile index must be a non-negative"):
        format_tile_index(index)

"""Reading C2SP tlog-tiles: paths, tiles, bundles, directories and URLs."""

import gzip
import http.server
import threading

import pytest
import rfc8785

from tests.verifier.servers import serve_directory
from tests.verifier.signing import TestLog, TestSigner
from tests.verifier.tiles_writer import bundle, leaf_hash, write_tiles
from verifier.errors import MalformedInput, Unavailable
from verifier.tiles import (
    TiledLog,
    TileSource,
    format_tile_index,
    level_width,
    parse_entry_bundle,
    split_entry_bundle,
    tile_path,
)

ORIGIN = "agentgate.example/tiles"
SIGNER = TestSigner.from_seed_text(ORIGIN, "tiles tests: log")


@pytest.fixture
def log_dir(tmp_path):
    log = TestLog(SIGNER, ORIGIN, 300)
    write_tiles(tmp_path / "log", log.entries, log.checkpoint())
    return tmp_path / "log", log


@pytest.mark.parametrize(
    ("index", "text"),
    [
        (0, "000"),
        (5, "005"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
    ],
)
def test_tile_index_format(index, text):
    assert format_tile_index(index) == text


def test_tile_paths():
    assert tile_path(0, 1) == "tile/0/001"
    assert tile_path(2, 1234067, 7) == "tile/2/x001/x234/067.p/7"
    assert tile_path(None, 0, 44) == "tile/entries/000.p/44"


def test_tile_path_rejects_width_zero():
    with pytest.raises(MalformedInput, match="tile width: expected 1 to 256, got 0"):
        tile_path(0, 0, 0)


def test_level_width():
    assert level_width(300, 0, 0) == 256
    assert level_width(300, 0, 1) == 44
    assert level_width(300, 1, 0) == 1
    assert level_width(300, 0, 2) == 0


def test_read_directory(log_dir):
    directory, log = log_dir
    tiled = TiledLog(str(directory))

    assert tiled.checkpoint() == log.checkpoint().encode()
    partial = tiled.hash_tile(0, 1, 44)
    assert partial[:32] == leaf_hash(log.entries[256])
    assert tiled.entry_bundle(1, 44) == log.entries[256:]


def test_partial_tile_cut_from_full_tile(log_dir):
    directory, log = log_dir
    # A log may stop serving a partial tile once the full one exists.
    (directory / "tile/0/000.p").mkdir(exist_ok=True)
    assert not (directory / "tile/0/000.p/10").exists()

    hashes = TiledLog(str(directory)).hash_tile(0, 0, 10)
    assert hashes == b"".join(leaf_hash(e) for e in log.entries[:10])


def test_missing_tile_is_unavailable(log_dir):
    directory, _ = log_dir
    with pytest.raises(Unavailable, match=r"hash tile .*tile/0/002 not found"):
        TiledLog(str(directory)).hash_tile(0, 2, 256)


def test_tile_of_wrong_length_is_malformed(log_dir):
    directory, _ = log_dir
    (directory / "tile/0/001.p/44").write_bytes(b"\x00" * 100)
    with pytest.raises(
        MalformedInput, match="expected 1408 bytes .44 hashes., got 100"
    ):
        TiledLog(str(directory)).hash_tile(0, 1, 44)


def test_missing_checkpoint_names_path(tmp_path):
    with pytest.raises(Unavailable, match="no checkpoint at .*checkpoint; is this"):
        TiledLog(str(tmp_path)).checkpoint()


def test_missing_directory_is_unavailable(tmp_path):
    with pytest.raises(Unavailable, match="does not exist or is not a directory"):
        TileSource(str(tmp_path / "nothing"))


def test_other_scheme_is_rejected():
    with pytest.raises(MalformedInput, match="got the scheme 'ftp'"):
        TileSource("ftp://127.0.0.1/log")


def test_read_url(log_dir):
    directory, log = log_dir
    with serve_directory(directory) as url:
        tiled = TiledLog(url + "/")
        assert tiled.checkpoint() == log.checkpoint().encode()
        assert tiled.entry_bundle(0, 256) == log.entries[:256]
        assert tiled.source.read("tile/9/000") is None


def test_url_refused_connection_is_unavailable():
    with serve_directory(".") as url:
        pass
    with pytest.raises(Unavailable, match="GET http://127.0.0.1:.*/checkpoint failed"):
        TiledLog(url).checkpoint()


def test_gzip_body_is_decompressed():
    data = bundle([b'{"a":1}'])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = gzip.compress(data)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = TileSource(f"http://127.0.0.1:{server.server_address[1]}")
        assert source.read("tile/entries/000.p/1") == data
    finally:
        server.shutdown()
        server.server_close()


def test_bundle_round_trip():
    entries = [rfc8785.dumps({"n": n}) for n in range(3)] + [b""]
    assert parse_entry_bundle(bundle(entries), 4) == entries


def test_bundle_wrong_count():
    with pytest.raises(MalformedInput, match="expected 3 entries, got 2"):
        parse_entry_bundle(bundle([b"a", b"b"]), 3)


def test_bundle_truncated_entry():
    data = bundle([b"abc", b"defg"])[:-1]
    entries, problem = split_entry_bundle(data)
    assert entries == [b"abc"]
    assert problem == "entry 1 claims 4 bytes, but only 3 remain"


def test_bundle_truncated_prefix():
    entries, problem = split_entry_bundle(bundle([b"abc"]) + b"\x00")
    assert entries == [b"abc"]
    assert problem == "entry 1 has a truncated length prefix at byte 5"

"""Witness collection at publication, against real ``agentgate witness serve``.

The witnesses run as separate processes on 127.0.0.1. One more server in a
thread plays a witness that misbehaves (bad lines, bad sizes), which a real
witness never does. The attached cosignatures are checked with the
verifier's own code, which shares nothing with the ledger.
"""

import base64
import re
import http.server
import os
import select
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from enforcement.cli import main
from ledger import InvalidKey, InvalidRequest, Ledger, Signer, StorageError
from ledger.publish import publish, read_published_checkpoint
from ledger.storage import Store
from ledger.cosignatures import (
    Cosignature,
    CosignerKey,
    WitnessPolicy,
    attach_cosignatures,
    parse_witness_policy,
    read_cosignatures,
)
from ledger.witnessing import collect_cosignatures, witnesses_for
from verifier import open_checkpoint, verify_cosignatures
from verifier import parse_witness_policy as verifier_policy
from verifier.cosignature import generate_cosigner, parse_cosigner_signer_key

from .conftest import FIXED_NOW, ORIGIN, record

START_TIMEOUT = 20.0


# -- witnesses ------------------------------------------------------------------


class WitnessKeys:
    """A witness's key pair, written as ``agentgate witness keygen`` does."""

    def __init__(self, directory, name):
        self.signer_text, self.verifier_text = generate_cosigner(name)
        self.key_file = directory / (name.replace("/", "_") + ".key")
        descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(self.signer_text + "\n")


class Witnesses:
    """Starts ``agentgate witness serve`` processes; stops them at the end."""

    def __init__(self, directory):
        self.directory = directory
        self.processes = []

    def start(self, name, log_key):
        """Start a witness that cosigns for ``log_key``; return its keys and process."""
        keys = WitnessKeys(self.directory, name)
        stem = name.replace("/", "_")
        config = self.directory / f"{stem}.logs"
        config.write_text(f"log {log_key}\n")
        command = [
            sys.executable, "-c", "from enforcement.cli import main; main()",
            "witness", "serve", "--key", str(keys.key_file), "--config", str(config),
            "--state", str(self.directory / f"{stem}.state.json"), "--port", "0",
            "--log-level", "warning",
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.processes.append(process)
        return keys, process

    def url(self, process):
        """Wait for the line a started witness prints and return its URL prefix."""
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        if "serving" not in line:
            process.kill()
            raise AssertionError(f"witness did not start: {line!r}")
        return line.strip().rsplit(" ", 1)[-1].removesuffix("/add-checkpoint")

    def stop(self):
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
            process.stdout.close()
            process.stderr.close()


@pytest.fixture
def witnesses(tmp_path):
    directory = tmp_path / "witnesses"
    directory.mkdir()
    started = Witnesses(directory)
    yield started
    started.stop()


def closed_port_url():
    """Return a URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def policy_text(entries, quorum):
    lines = [f"witness {label} {key}" for label, key in entries]
    return "\n".join(lines + [f"quorum {quorum}"]) + "\n"


# -- logs -----------------------------------------------------------------------


def grow(path, signer, size, first_value=0):
    with Ledger.open(path, signer, now=FIXED_NOW) as ledger:
        count = size - ledger.size
        items = [(record(first_value + ledger.size + i), None) for i in range(count)]
        if items:
            ledger.append_batch(items)


def run_publish(path, out, policy, urls, **options):
    """Publish with the witnesses of ``policy``, at their URLs in ``urls``."""
    urls = {label: urls[label] for label, _ in policy.witnesses}
    with Ledger.open(path, None, create=False) as ledger:
        store = Store.open(path)
        try:
            return publish(
                ledger,
                store,
                out,
                witnesses=witnesses_for(policy, urls),
                policy=policy,
                **options,
            )
        finally:
            store.close()


@pytest.fixture
def log_path(tmp_path, signer):
    path = tmp_path / "log.db"
    grow(path, signer, 10)
    return path


@pytest.fixture
def four(witnesses, signer, tmp_path):
    """Witnesses w1 and w2 (running), w3 (down) and w4 (trusts another log key)."""
    log_key = str(signer.verifier_key)
    stranger = Signer.from_seed(ORIGIN, b"\x07" * 32)
    # Started together, because each takes a second to import.
    w1, process1 = witnesses.start("witness.test/w1", log_key)
    w2, process2 = witnesses.start("witness.test/w2", log_key)
    w4, process4 = witnesses.start("witness.test/w4", str(stranger.verifier_key))
    w3 = WitnessKeys(tmp_path / "witnesses", "witness.test/w3")
    url1, url2, url4 = (witnesses.url(p) for p in (process1, process2, process4))
    keys = {"w1": w1, "w2": w2, "w3": w3, "w4": w4}
    urls = {"w1": url1, "w2": url2, "w3": closed_port_url(), "w4": url4}
    return keys, urls


def make_policy(keys, labels, quorum):
    return parse_witness_policy(
        policy_text([(label, keys[label].verifier_text) for label in labels], quorum)
    )


# -- collection against running witnesses ----------------------------------------


def test_quorum_met_despite_down_and_rejecting(tmp_path, log_path, signer, four):
    keys, urls = four
    policy = make_policy(keys, ["w1", "w2", "w3", "w4"], 2)
    out = tmp_path / "pub"

    result = run_publish(log_path, out, policy, urls)

    assert result.published
    outcomes = {o.witness.label: o for o in result.collection.outcomes}
    assert outcomes["w1"].cosignature is not None
    assert outcomes["w2"].cosignature is not None
    assert outcomes["w3"].cosignature is None
    assert "failed" in outcomes["w3"].problem
    assert "HTTP 403" in outcomes["w4"].problem
    assert result.collection.counted == 2

    published = (out / "checkpoint").read_text()
    assert published == result.note
    checkpoint, note = open_checkpoint(published, [str(signer.verifier_key)], ORIGIN)
    assert checkpoint.size == 10
    labels = ("w1", "w2", "w3", "w4")
    text = policy_text([(k, keys[k].verifier_text) for k in labels], 2)
    counted = verifier_policy(text).check(note, now=int(time.time()))
    assert sorted(c.key.name for c in counted) == ["witness.test/w1", "witness.test/w2"]


def test_cosignatures_verify_with_verifier(tmp_path, log_path, four):
    keys, urls = four
    policy = make_policy(keys, ["w1", "w2"], 2)

    result = run_publish(log_path, tmp_path / "pub", policy, urls)

    found = verify_cosignatures(
        result.note,
        [parse_cosigner_signer_key(keys[k].signer_text).verifier_key
         for k in ("w1", "w2")],
        now=int(time.time()),
    )
    assert len(found) == 2


def test_cosigned_checkpoint_stored_in_database(tmp_path, log_path, four):
    keys, urls = four
    policy = make_policy(keys, ["w1"], 1)

    result = run_publish(log_path, tmp_path / "pub", policy, urls)

    store = Store.open(log_path)
    try:
        assert store.read_checkpoint(10) == result.note
    finally:
        store.close()
    with Ledger.open(log_path, None, create=False) as ledger:
        assert ledger.latest_checkpoint() == result.note


def test_quorum_not_met_publishes_nothing(tmp_path, log_path, four):
    keys, urls = four
    policy = make_policy(keys, ["w1", "w3", "w4"], 2)
    out = tmp_path / "pub"

    result = run_publish(log_path, out, policy, urls)

    assert not result.published
    assert result.collection.counted == 1
    assert not (out / "checkpoint").exists()
    assert not (out / "tile").exists()


def test_same_key_under_two_labels_counts_once(tmp_path, log_path, four):
    keys, urls = four
    text = policy_text(
        [("w1", keys["w1"].verifier_text), ("w1-again", keys["w1"].verifier_text),
         ("w3", keys["w3"].verifier_text)],
        2,
    )
    policy = parse_witness_policy(text)
    both = {"w1": urls["w1"], "w1-again": urls["w1"], "w3": urls["w3"]}

    result = run_publish(log_path, tmp_path / "pub", policy, both)

    cosigned = [o for o in result.collection.outcomes if o.cosignature is not None]
    assert len(cosigned) == 2
    assert result.collection.counted == 1
    assert not result.published


def test_growth_sends_proof_from_published_size(tmp_path, log_path, signer, four):
    keys, urls = four
    policy = make_policy(keys, ["w1"], 1)
    out = tmp_path / "pub"
    run_publish(log_path, out, policy, urls)
    grow(log_path, signer, 300)

    result = run_publish(log_path, out, policy, urls)

    assert result.published
    assert result.collection.outcomes[0].old_size == 10
    assert read_published_checkpoint(out).size == 300


def test_conflict_retried_from_reported_size(tmp_path, log_path, signer, four):
    keys, urls = four
    policy = make_policy(keys, ["w1"], 1)
    run_publish(log_path, tmp_path / "first", policy, urls)
    grow(log_path, signer, 40)

    # A fresh directory has no cosignature of w1, so the first request sends
    # old 0, and w1 responds with 409 and the size it cosigned, 10.
    result = run_publish(log_path, tmp_path / "second", policy, urls)

    assert result.published
    assert result.collection.outcomes[0].old_size == 10


def test_split_view_reported(tmp_path, log_path, signer, four):
    keys, urls = four
    policy = make_policy(keys, ["w1"], 1)
    run_publish(log_path, tmp_path / "first", policy, urls)
    forked = tmp_path / "forked.db"
    grow(forked, signer, 10, first_value=1000)

    result = run_publish(forked, tmp_path / "forked-pub", policy, urls)

    assert not result.published
    problem = result.collection.outcomes[0].problem
    assert "cosigned another root at tree size 10" in problem


def test_untrusted_log_key_gets_403_hint(tmp_path, log_path, four):
    keys, urls = four
    policy = make_policy(keys, ["w4"], 1)

    result = run_publish(log_path, tmp_path / "pub", policy, urls)

    assert not result.published
    problem = result.collection.outcomes[0].problem
    assert "HTTP 403" in problem
    assert "does not trust the log key" in problem


def test_unknown_origin_gets_404(tmp_path, log_path, witnesses):
    other = Signer.from_seed("other.test/log", b"\x08" * 32)
    keys, process = witnesses.start("witness.test/w5", str(other.verifier_key))
    policy = make_policy({"w5": keys}, ["w5"], 1)

    result = run_publish(
        log_path, tmp_path / "pub", policy, {"w5": witnesses.url(process)}
    )

    assert not result.published
    problem = result.collection.outcomes[0].problem
    assert "HTTP 404" in problem
    assert "not configured for this log's origin" in problem
    assert not (tmp_path / "pub" / "checkpoint").exists()


def test_other_history_gets_422(tmp_path, log_path, signer, four, caplog):
    keys, urls = four
    policy = make_policy(keys, ["w1"], 1)
    run_publish(log_path, tmp_path / "first", policy, urls)
    # The same origin and key, another history that is longer than the
    # witness's tree: w1 returns 409 with size 10, and then the proof from
    # 10 to 20 fails against the root w1 cosigned.
    forked = tmp_path / "forked.db"
    grow(forked, signer, 20, first_value=1000)

    with caplog.at_level("ERROR", logger="ledger.witnessing"):
        result = run_publish(forked, tmp_path / "forked-pub", policy, urls)

    assert not result.published
    outcome = result.collection.outcomes[0]
    assert outcome.old_size == 10
    assert "HTTP 422" in outcome.problem
    assert "saw another history of this log" in outcome.problem
    assert "split view" in caplog.text
    assert not (tmp_path / "forked-pub" / "checkpoint").exists()


def test_future_timestamp_rejected(tmp_path, log_path, four):
    keys, urls = four
    policy = make_policy(keys, ["w1"], 1)

    result = run_publish(
        log_path, tmp_path / "pub", policy, urls, now=int(time.time()) - 3600
    )

    assert not result.published
    assert "in the future" in result.collection.outcomes[0].problem


def test_cli_reports_each_witness(tmp_path, log_path, four):
    keys, urls = four
    policy_file = tmp_path / "policy.txt"
    policy_file.write_text(
        policy_text([(k, keys[k].verifier_text) for k in ("w1", "w3")], 1)
    )
    args = ["publish", "--db", str(log_path), "--out", str(tmp_path / "pub"),
            "--witness-policy", str(policy_file),
            "--witness-url", f"w1={urls['w1']}", "--witness-url", f"w3={urls['w3']}"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 0, result.output
    assert "witness w1: cosigned size 10" in result.stderr
    assert f"witness w3: POST {urls['w3']}/add-checkpoint failed" in result.stderr
    assert "\u2014 witness.test/w1 " in result.stdout


def test_cli_quorum_not_met_exits_1(tmp_path, log_path, four):
    keys, urls = four
    policy_file = tmp_path / "policy.txt"
    policy_file.write_text(
        policy_text([(k, keys[k].verifier_text) for k in ("w1", "w4")], 2)
    )
    args = ["publish", "--db", str(log_path), "--out", str(tmp_path / "pub"),
            "--witness-policy", str(policy_file),
            "--witness-url", f"w1={urls['w1']}", "--witness-url", f"w4={urls['w4']}"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 1
    assert "needs cosignatures by 2 distinct witnesses, and 1 verified" in (
        result.stderr
    )
    assert "still contains size 0" in result.stderr


def test_cli_witness_without_url(tmp_path, log_path, four):
    keys, _ = four
    policy_file = tmp_path / "policy.txt"
    policy_file.write_text(policy_text([("w1", keys["w1"].verifier_text)], 1))

    result = CliRunner().invoke(
        main,
        ["publish", "--db", str(log_path), "--out", str(tmp_path / "pub"),
         "--witness-policy", str(policy_file)],
    )

    assert result.exit_code == 2
    assert "witness 'w1' of the witness policy has no URL" in result.stderr


# -- a witness that misbehaves ----------------------------------------------------


@contextmanager
def fake_witness(responses):
    """Serve POST /add-checkpoint with the (status, body) responses, in order."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            requests.append(body.decode())
            status, content = responses[min(len(requests), len(responses)) - 1]
            data = content(body.decode()) if callable(content) else content
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cosigner():
    signer_text, _ = generate_cosigner("witness.test/fake")
    return parse_cosigner_signer_key(signer_text)


def collect_from(url, cosigner, note, size, proof=lambda first, second: []):
    policy = parse_witness_policy(
        policy_text([("fake", str(cosigner.verifier_key))], 1)
    )
    return collect_cosignatures(
        note, size, proof, witnesses_for(policy, {"fake": url}), policy,
        now=int(time.time()),
    )


@pytest.fixture
def note(log_path):
    with Ledger.open(log_path, None, create=False) as ledger:
        return ledger.latest_checkpoint()


def note_text(note):
    return note[: note.rfind("\n\n") + 1]


def test_altered_cosignature_rejected(log_path, cosigner, note):
    line = cosigner.cosign(note_text(note), int(time.time()))
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[-1] ^= 1
    altered = f"\u2014 witness.test/fake {base64.b64encode(bytes(blob)).decode()}\n"

    with fake_witness([(200, altered.encode())]) as (url, _):
        collection = collect_from(url, cosigner, note, 10)

    assert not collection.met
    assert "does not verify over the checkpoint" in collection.outcomes[0].problem


def test_answer_without_own_line_rejected(log_path, cosigner, note):
    other_signer, _ = generate_cosigner("witness.test/other")
    line = parse_cosigner_signer_key(other_signer).cosign(note_text(note), 1)

    with fake_witness([(200, line.encode())]) as (url, _):
        collection = collect_from(url, cosigner, note, 10)

    assert "returned 200 without a cosignature line" in collection.outcomes[0].problem


def test_conflict_with_larger_size_rejected(log_path, cosigner, note):
    with fake_witness([(409, b"25\n")]) as (url, requests):
        collection = collect_from(url, cosigner, note, 10)

    assert len(requests) == 1
    assert "last cosigned tree size 25, larger than" in collection.outcomes[0].problem


def test_conflict_without_size_rejected(log_path, cosigner, note):
    with fake_witness([(409, b"conflict\n")]) as (url, _):
        collection = collect_from(url, cosigner, note, 10)

    assert "409 without a tree size" in collection.outcomes[0].problem


def test_repeated_conflicts_give_up(log_path, cosigner, note):
    sizes = [(409, b"3\n"), (409, b"5\n"), (409, b"7\n"), (409, b"8\n")]
    proofs = []

    def proof(first, second):
        proofs.append((first, second))
        return [bytes(32)]

    with fake_witness(sizes) as (url, requests):
        collection = collect_from(url, cosigner, note, 10, proof)

    assert len(requests) == 3
    assert requests[0].startswith("old 0\n\n")
    assert requests[1].startswith("old 3\n" + base64.b64encode(bytes(32)).decode())
    assert proofs == [(3, 10), (5, 10)]
    assert "returned 409 to 3 requests in a row" in collection.outcomes[0].problem


def test_request_carries_note_verbatim(log_path, cosigner, note):
    def cosign(body):
        return cosigner.cosign(note_text(note), int(time.time())).encode()

    with fake_witness([(200, cosign)]) as (url, requests):
        collection = collect_from(url, cosigner, note, 10)

    assert collection.met
    assert requests == ["old 0\n\n" + note]


def test_slow_witness_times_out(log_path, cosigner, note):
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            release.wait(10)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    policy = parse_witness_policy(
        policy_text([("slow", str(cosigner.verifier_key))], 1)
    )
    try:
        collection = collect_cosignatures(
            note, 10, lambda first, second: [],
            witnesses_for(policy, {"slow": url}), policy,
            now=int(time.time()), timeout=0.2,
        )
    finally:
        release.set()
        server.shutdown()
        server.server_close()

    assert not collection.met
    problem = collection.outcomes[0].problem
    assert "timed out after 0.2 s" in problem
    assert "--witness-timeout" in problem


def test_unexpected_status_named(log_path, cosigner, note):
    with fake_witness([(503, b"busy\n")]) as (url, _):
        collection = collect_from(url, cosigner, note, 10)

    problem = collection.outcomes[0].problem
    assert "returned HTTP 503: busy" in problem
    assert "add-checkpoint endpoint" in problem


# -- policy files, keys and notes -------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("quorum 1\n", "expected at least one witness line"),
        ("witness w1 {key}\n", "expected a 'quorum <k>' line"),
        ("witness w1 {key}\nquorum 2\n", "quorum 2 must lie between 1 and the 1"),
        ("witness w1 {key}\nquorum 0\n", "quorum 0 must lie between 1"),
        ("witness w1 {key}\nquorum 1\nquorum 1\n", "line 3: a second quorum line"),
        ("witness w1 {key}\nwitness w1 {key}\nquorum 1\n", "line 2: witness 'w1' is"),
        ("witness w/1 {key}\nquorum 1\n", "line 1: witness label 'w/1' is invalid"),
        ("witness w1 {key}\nquorum one\n", "line 2: quorum 'one' is not a decimal"),
        ("witness w1 {key} extra\nquorum 1\n", "line 1: expected 'witness <label>"),
        ("witness w1 nokey\nquorum 1\n", "line 1: cosigner key 'nokey' must have"),
    ],
)
def test_policy_errors(text, message, cosigner):
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        parse_witness_policy(text.format(key=cosigner.verifier_key))


def test_policy_comments_and_blank_lines(cosigner):
    text = f"# witnesses\n\nwitness w1 {cosigner.verifier_key}\n  quorum 1  \n"
    policy = parse_witness_policy(text)
    assert policy.quorum == 1
    assert [label for label, _ in policy.witnesses] == ["w1"]


def test_log_key_is_not_a_cosigner_key(signer):
    with pytest.raises(InvalidKey, match="starting with 0x04"):
        CosignerKey.parse(str(signer.verifier_key))


def test_cosigner_key_id_checked(cosigner):
    name, _, material = str(cosigner.verifier_key).split("+", 2)
    with pytest.raises(InvalidKey, match="does not match the key"):
        CosignerKey.parse(f"{name}+00000000+{material}")


def test_cosigner_key_round_trip(cosigner):
    text = str(cosigner.verifier_key)
    assert str(CosignerKey.parse(text)) == text


@pytest.mark.parametrize(
    "urls, message",
    [
        ({}, "witness 'w1' of the witness policy has no URL"),
        ({"w1": "http://127.0.0.1:1", "w9": "http://127.0.0.1:2"}, "for 'w9', which"),
        ({"w1": "ftp://127.0.0.1/"}, "is not an http(s) URL"),
        ({"w1": "http://"}, "is not an http(s) URL"),
    ],
)
def test_witness_url_errors(urls, message, cosigner):
    policy = parse_witness_policy(policy_text([("w1", str(cosigner.verifier_key))], 1))
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        witnesses_for(policy, urls)


def test_witness_url_forms(cosigner):
    policy = parse_witness_policy(policy_text([("w1", str(cosigner.verifier_key))], 1))
    for given in ("http://127.0.0.1:7380", "http://127.0.0.1:7380/",
                  "http://127.0.0.1:7380/add-checkpoint"):
        (witness,) = witnesses_for(policy, {"w1": given})
        assert witness.url == "http://127.0.0.1:7380/add-checkpoint"


def test_attach_replaces_line_of_same_key(note, cosigner):
    key = CosignerKey.parse(str(cosigner.verifier_key))
    text = note_text(note)
    old = Cosignature(key, 1, cosigner.cosign(text, 1))
    new = Cosignature(key, 2, cosigner.cosign(text, 2))

    once = attach_cosignatures(note, [old])
    twice = attach_cosignatures(once, [new])

    assert twice == note + new.line
    assert [c.timestamp for c in read_cosignatures(twice, [key])] == [2]


def test_altered_stored_line_is_storage_error(note, cosigner):
    key = CosignerKey.parse(str(cosigner.verifier_key))
    cosigned = attach_cosignatures(
        note, [Cosignature(key, 5, cosigner.cosign(note_text(note), 5))]
    )
    altered = cosigned.replace("\n10\n", "\n11\n", 1)

    with pytest.raises(StorageError, match="at tree size 11: cosignature by"):
        read_cosignatures(altered, [key])


def test_policy_counts_distinct_keys(note, cosigner):
    key = CosignerKey.parse(str(cosigner.verifier_key))
    policy = WitnessPolicy((("a", key), ("b", key)), 1)
    line = Cosignature(key, 1, cosigner.cosign(note_text(note), 1))
    assert policy.count([line, line]) == 1

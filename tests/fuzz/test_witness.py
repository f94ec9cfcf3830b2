"""Bodies of the witness's add-checkpoint call, mutated and random.

Each example meets a witness that cosigned the sample log at size 3. Every
body gets one of the statuses of specs/witness.md, never an exception, and
a mutated body that is cosigned must carry the original checkpoint.
"""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.mutations import FAST, mutated
from tests.fuzz.samples import LOG_KEY, ORIGIN, sample_log, scratch_directory
from verifier import (
    Witness,
    WitnessState,
    generate_cosigner,
    open_checkpoint,
    parse_checkpoint,
    parse_cosigner_signer_key,
    parse_note,
    parse_verifier_key,
)
from verifier.witness import LogState

LOG = sample_log()
COSIGNER = parse_cosigner_signer_key(generate_cosigner("witness.example/fuzz")[0])
FIRST, _ = open_checkpoint(LOG.checkpoints[3], [LOG_KEY])
LAST, _ = open_checkpoint(LOG.checkpoints[11], [LOG_KEY])
BODY = f"old 3\n{LOG.consistency_text}\n{LOG.checkpoints[11]}".encode()
STATUSES = {200, 400, 403, 404, 409, 422}
_states = itertools.count()


def add_checkpoint(body: bytes):
    """Send ``body`` to a fresh witness that cosigned size 3 before."""
    state = WitnessState(scratch_directory() / f"witness-{next(_states)}.json")
    try:
        state.put(ORIGIN, LogState(FIRST.size, FIRST.root))
        witness = Witness(
            COSIGNER, {ORIGIN: [parse_verifier_key(LOG_KEY)]}, state, lambda: 10**9
        )
        return witness.add_checkpoint(body)
    finally:
        state.close()


def test_valid_body_is_cosigned():
    answer = add_checkpoint(BODY)
    assert answer.status == 200, answer.body
    assert answer.body.startswith("\u2014 witness.example/fuzz ".encode())


@FAST
@given(mutated(BODY, max_edits=3))
def test_mutated_body_cosigned_only_unchanged(body):
    answer = add_checkpoint(body)

    assert answer.status in STATUSES, answer
    if answer.status == 200:
        head, _, note = body.decode().partition("\n\n")
        checkpoint = parse_checkpoint(parse_note(note).text)
        assert head.split("\n")[0] == "old 3"
        assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (
            LAST.origin,
            LAST.size,
            LAST.root,
        )


@FAST
@given(st.binary(max_size=400))
def test_random_body_rejected_cleanly(body):
    assert add_checkpoint(body).status in STATUSES - {200}

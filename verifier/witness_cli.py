"""``agentgate witness``: create a witness key and serve the add-checkpoint call."""

import logging
import os
from pathlib import Path

import click

from verifier._files import read_secret_file
from verifier.cosignature import generate_cosigner, parse_cosigner_signer_key
from verifier.errors import VerificationError
from verifier.witness import Witness, WitnessState, make_server, parse_witness_config

logger = logging.getLogger(__name__)

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@click.group(name="witness")
def witness():
    """Run a C2SP tlog-witness that cosigns consistent checkpoints."""


class _InputError(click.ClickException):
    """Bad input (a key, configuration or state file): exit status 2."""

    exit_code = 2


@witness.command(name="keygen")
@click.option(
    "--name",
    required=True,
    help="Witness name, such as witness.example/w1 (no spaces or '+').",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for NAME.key (mode 0600) and NAME.pub.",
)
def keygen(name, out_dir):
    """Create a cosigner key pair: NAME.key (secret) and NAME.pub (share it)."""
    try:
        signer, verifier_key = generate_cosigner(name)
    except VerificationError as err:
        raise click.BadParameter(str(err), param_hint="--name") from None
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = name.replace("/", "_")
    key_path, pub_path = directory / f"{stem}.key", directory / f"{stem}.pub"
    if key_path.exists():
        raise _InputError(f"{key_path} already exists; choose another --out")
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(signer + "\n")
    pub_path.write_text(verifier_key + "\n")
    click.echo(f"wrote {key_path} and {pub_path}")
    click.echo(verifier_key)


@witness.command(name="serve")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The witness's signer key file (mode 0600), from `witness keygen`.",
)
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Known logs: one 'log <verifier key> [<origin>]' per line.",
)
@click.option(
    "--state",
    "state_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="State file: the latest cosigned size and root per log.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7380, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve(key_file, config_file, state_file, host, port, log_level):
    """Serve POST /add-checkpoint until interrupted."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cosigner = parse_cosigner_signer_key(read_secret_file(key_file, "witness key"))
        logs = parse_witness_config(Path(config_file).read_text("utf-8"), config_file)
        state = WitnessState(state_file)
    except (VerificationError, OSError, UnicodeDecodeError) as err:
        raise _InputError(str(err)) from None
    if host not in _LOOPBACK:
        logger.warning(
            "serving on %s; the witness speaks plain HTTP, so put a TLS "
            "proxy in front of it",
            host,
        )

    try:
        server = make_server(Witness(cosigner, logs, state), host, port)
    except OSError as err:
        # The state file's lock goes too, so a second try can take it.
        state.close()
        raise _InputError(
            f"cannot listen on {host} port {port}: {err.strerror or err}; "
            "choose another --host or --port"
        ) from None
    bound_host, bound_port = server.server_address[:2]
    click.echo(
        f"witness {cosigner.verifier_key} serving {len(logs)} logs on "
        f"http://{bound_host}:{bound_port}/add-checkpoint"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.close()

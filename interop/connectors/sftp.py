"""The SFTP dépôt connector (asyncssh): deposits laid out as configured (layout.py) in a remote folder.

The server's host key is always checked against the configured one (no « trust on first use »);
authentication by password or private key. A rename that must not overwrite uses SFTP's plain rename, which
servers refuse when the name exists; a replacement uses ``posix-rename@openssh.com``.

asyncssh is asynchronous and the connectors are not: each connector call runs its own event loop
(``asyncio.Runner``) for the time of one SSH connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar, cast

import asyncssh

from interop.connectors.layout import Layout, Oversized, deposit, probe
from interop.connectors.transport import DestinationRefused, NameNotFound, resolve_destination
from socle.errors import Conflict, InvalidInput, ServiceUnavailable, message
from socle.storage import ObjectStore

T = TypeVar("T")


def parse_host_key(text: str) -> asyncssh.SSHKey:
    """The server's public key from an OpenSSH line (« ssh-ed25519 AAAA… », as ``ssh-keyscan`` prints it).

    A leading host name (known_hosts format) is accepted and ignored.

    :raises InvalidInput: not a public key.
    """
    words = text.strip().split()
    if len(words) >= 3 and not words[0].startswith(("ssh-", "ecdsa-", "sk-")):
        words = words[1:]  # « host key-type base64 »: the known_hosts form
    try:
        return asyncssh.import_public_key(" ".join(words[:2]))
    except (asyncssh.KeyImportError, ValueError):
        raise InvalidInput(
            message("clé d'hôte SFTP illisible : attendu « ssh-ed25519 AAAA… » (sortie de ssh-keyscan)")
        ) from None


def parse_private_key(text: str) -> asyncssh.SSHKey:
    """The client's private key (OpenSSH or PEM, not protected by a passphrase).

    :raises InvalidInput: not a private key, or protected by a passphrase.
    """
    try:
        return asyncssh.import_private_key(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise InvalidInput(
            message("clé privée SFTP illisible (ou protégée par une phrase secrète) : %(exc)s", exc=exc)
        ) from None


class SftpTarget:
    """A remote folder over one SFTP session, as a layout :class:`~interop.connectors.layout.Target`."""

    def __init__(self, runner: asyncio.Runner, sftp: asyncssh.SFTPClient, root: str) -> None:
        self._runner, self._sftp, self.root = runner, sftp, root

    def _path(self, path: str) -> str:
        return str(PurePosixPath(self.root) / path) if path else self.root

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            return self._runner.run(coroutine)
        except asyncssh.SFTPNoSuchFile as exc:
            raise FileNotFoundError(exc.reason) from None
        except asyncssh.SFTPFileAlreadyExists as exc:
            raise FileExistsError(exc.reason) from None
        except asyncssh.SFTPPermissionDenied as exc:
            raise Conflict(
                message("le serveur SFTP refuse l'opération : %(exc_reason)s", exc_reason=exc.reason)
            ) from None
        except asyncssh.SFTPError as exc:
            raise ServiceUnavailable(
                message("erreur du serveur SFTP : %(exc_reason)s", exc_reason=exc.reason)
            ) from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise ServiceUnavailable(message("connexion SFTP interrompue : %(exc)s", exc=exc)) from None

    def exists(self, path: str) -> bool:
        return self._run(self._sftp.exists(self._path(path)))

    def makedirs(self, path: str) -> None:
        self._run(self._sftp.makedirs(self._path(path), exist_ok=True))

    def upload(self, local: Path, path: str) -> None:
        self._run(self._sftp.put(local, self._path(path)))

    def rename(self, source: str, target: str, *, replace: bool) -> None:
        if replace:
            self._run(self._sftp.posix_rename(self._path(source), self._path(target)))
            return
        try:
            self._run(self._sftp.rename(self._path(source), self._path(target)))
        except ServiceUnavailable:
            # SFTP v3 (OpenSSH) answers a generic failure when the name is taken: tell the two apart.
            if self.exists(target):
                raise FileExistsError(target) from None
            raise

    def remove(self, path: str) -> None:
        full = self._path(path)
        if not self._run(self._sftp.lexists(full)):
            return
        if self._run(self._sftp.isdir(full)):
            self._run(self._sftp.rmtree(full))
        else:
            self._run(self._sftp.remove(full))

    def download(self, path: str, local: Path, max_bytes: int) -> None:
        async def fetch() -> None:
            # Read by blocks up to the bound: the size the server announces is not trusted.
            async with self._sftp.open(self._path(path), "rb") as remote:
                with local.open("wb") as out:
                    copied = 0
                    while chunk := cast(bytes, await remote.read(1024 * 1024)):  # opened "rb": bytes
                        copied += len(chunk)
                        if copied > max_bytes:
                            raise Oversized(max_bytes)
                        out.write(chunk)

        self._run(fetch())


class SftpConnector:
    """Deposits on an SFTP server; ``config`` as :class:`interop.schemas.SftpConfig`, secrets decrypted."""

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config, self.secrets = name, config, secrets
        self.layout = Layout.of(config)

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Deposit the object in the remote folder (created if needed); see :func:`layout.deposit`."""
        with self.session() as target:
            target.makedirs("")
            receipt = deposit(
                target, self.layout, store, object_key, filename, size, connector=self.name, shown_folder=target.root
            )
        return {**receipt, "server": f"sftp://{self.config['host']}:{self.config.get('port') or 22}"}

    def test(self) -> str:
        """Connect (host key checked), create the folder if needed, write and remove a hidden file."""
        with self.session() as target:
            probe(target)
        return f"serveur SFTP joignable, dossier {self.config.get('path') or '.'} accessible en écriture"

    @contextmanager
    def session(self) -> Iterator[SftpTarget]:
        """One SSH connection and SFTP session, on an event loop of its own (call it from synchronous code).

        :raises Conflict: host key mismatch or authentication refused (the configuration must change).
        :raises ServiceUnavailable: server unreachable or not answering in time.
        """
        with asyncio.Runner() as runner:
            connection, sftp = self._connect(runner)
            try:
                yield SftpTarget(runner, sftp, str(self.config.get("path") or "."))
            finally:
                sftp.exit()
                connection.close()
                runner.run(connection.wait_closed())

    def _connect(self, runner: asyncio.Runner) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        host, port = str(self.config["host"]), int(self.config.get("port") or 22)
        key = self.secrets.get("client_key")
        options: dict[str, Any] = {
            "known_hosts": ([parse_host_key(str(self.config["host_key"]))], [], []),
            "username": self.config["username"],
            "password": self.secrets.get("password") or None,
            "client_keys": [parse_private_key(key)] if key else [],
            "connect_timeout": float(self.config.get("timeout") or 30),
            "login_timeout": float(self.config.get("timeout") or 30),
            "agent_path": None,  # only the configured key: never the worker's own SSH agent
            "preferred_auth": "publickey,password,keyboard-interactive",
        }
        where = f"serveur SFTP {host}:{port}"

        try:
            # Never a link-local address (a cloud's metadata service), and the connection goes to an address
            # checked here, not to a second lookup's answer. The host key is the configured one: no name needed.
            addresses = resolve_destination(host, port)
        except DestinationRefused as exc:
            raise Conflict(message("%(where)s : %(detail)s", where=where, detail=exc.detail)) from None
        except NameNotFound as exc:
            detail = message("le %(where)s est injoignable : %(exc)s", where=where, exc=exc.detail)
            raise ServiceUnavailable(detail) from None

        async def connect() -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
            connection = await _first_answering(addresses, port, options)
            try:
                return connection, await connection.start_sftp_client()
            except BaseException:
                connection.close()
                raise

        try:
            return runner.run(connect())
        except asyncssh.HostKeyNotVerifiable:
            raise Conflict(
                message("la clé d'hôte du %(where)s ne correspond pas à celle configurée", where=where)
            ) from None
        except asyncssh.PermissionDenied:
            raise Conflict(
                message("authentification refusée par le %(where)s (utilisateur, mot de passe ou clé)", where=where)
            ) from None
        except TimeoutError:
            raise ServiceUnavailable(message("le %(where)s ne répond pas (délai dépassé)", where=where)) from None
        except ConnectionRefusedError:
            raise ServiceUnavailable(message("le %(where)s refuse la connexion (arrêté ?)", where=where)) from None
        except (OSError, asyncssh.Error) as exc:
            raise ServiceUnavailable(message("le %(where)s est injoignable : %(exc)s", where=where, exc=exc)) from None


async def _first_answering(addresses: list[str], port: int, options: dict[str, Any]) -> asyncssh.SSHClientConnection:
    """A connection to the first address that takes it (the next is tried only when nothing was sent: refused,
    unreachable, or no answer within the connection's delay)."""
    for address in addresses[:-1]:
        try:
            return await asyncssh.connect(address, port, **options)
        except OSError:  # refused, unreachable, timed out (asyncssh's own errors, such as a wrong key, are not)
            continue
    return await asyncssh.connect(addresses[-1], port, **options)

"""The encrypted keyring file: where the desk keeps its secrets on a computer with no secure system keyring.

Headless Linux has no Secret Service; keyring's ``fail`` backend stores nothing and a plaintext
file protects nothing. There the desk keeps the Breeze credentials and the audit chain's keys in
``keyring.cfg`` in the data folder: keyrings.cryptfile's ``CryptFileKeyring`` format (each entry
AES-GCM under its own argon2id key derived from a passphrase and a fresh salt), owner-only, opened
only with a passphrase handed to it (never a prompt of its own). Once unlocked it is installed as
the process's keyring (``keyring.set_keyring``), so ``app.security.vault`` and
``app.store.chain_key`` use it unchanged.

The passphrase lives only in this process's memory: never on disk, in a log line, an exception
message or a ``repr``. It is normalised to Unicode NFC, so the same phrase typed through another
input method opens the file. Decrypted entries are kept in memory after the first read (each read
costs one argon2id derivation); the memory is dropped when the file changes on disk.

The argon2id cost is recorded in the file (``keyring-setting`` / ``bulwark-kdf``) and read back
when it is opened, so a later Bulwark can raise it without locking out older files; a file made by
keyrings.cryptfile itself (no record) is read with that package's own defaults.

Installing keyrings.cryptfile has a side effect this module also undoes: keyring's auto-detection
then always lands on its ``ChainerBackend`` (the cryptfile backends count as extra candidates),
which chains a plaintext file backend and which the desk rightly refuses, hiding the operating
system's own keyring. :func:`select_system_keyring` puts the system's keyring back.
"""

from __future__ import annotations

import configparser
import contextlib
import logging
import os
import re
import select
import tempfile
import time
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keyring
from jaraco.classes import properties
from keyring.backends import fail
from keyring.errors import KeyringError, PasswordDeleteError
from keyrings.cryptfile.cryptfile import CryptFileKeyring  # type: ignore[import-untyped]
from keyrings.cryptfile.escape import escape as escape_for_ini  # type: ignore[import-untyped]
from keyrings.cryptfile.escape import unescape as unescape_from_ini

from app.store.chain_key import backend_label, is_secure_backend

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

log = logging.getLogger(__name__)

__all__ = [
    "FILE_NAME",
    "MAX_PASSPHRASE",
    "MIN_PASSPHRASE",
    "PASSPHRASE_FD_ENV",
    "EncryptedFileKeyring",
    "FileKeyringError",
    "KdfCost",
    "KeyringLocked",
    "WrongPassphrase",
    "create_file_keyring",
    "keyring_file",
    "keyring_status",
    "open_file_keyring",
    "passphrase_problems",
    "read_passphrase_fd",
    "record_in_settings",
]

FILE_NAME = "keyring.cfg"
MIN_PASSPHRASE = 12
MAX_PASSPHRASE = 1024
# Names a file descriptor to read the passphrase from (a pipe a script or service manager set up);
# never the passphrase itself, which would then sit in the environment of every child process.
PASSPHRASE_FD_ENV = "BULWARK_KEYRING_PASSPHRASE_FD"

_SETTING = "keyring-setting"
_REFERENCE = ("keyring-setting", "password reference")
_REFERENCE_VALUE = "password reference value"
_KDF_OPTION = "bulwark-kdf"
_KDF_TEXT = re.compile(r"^argon2id t=(?P<t>\d{1,3}) m=(?P<m>\d{1,8}) p=(?P<p>\d{1,2})$")
# Bounds on a cost read back from the file: a tampered file must not make an unlock take an hour
# or a gigabyte.
_MAX_TIME_COST = 50
_MAX_MEMORY_KIB = 1024 * 1024
_MAX_PARALLELISM = 16


@dataclass(frozen=True, slots=True)
class KdfCost:
    """The argon2id cost of deriving one entry's key from the passphrase."""

    time_cost: int
    memory_kib: int
    parallelism: int

    def text(self) -> str:
        return f"argon2id t={self.time_cost} m={self.memory_kib} p={self.parallelism}"

    @classmethod
    def parse(cls, text: str) -> KdfCost:
        match = _KDF_TEXT.match(text.strip())
        if match is None:
            raise ValueError("not an argon2id cost")
        cost = cls(int(match["t"]), int(match["m"]), int(match["p"]))
        if not (1 <= cost.time_cost <= _MAX_TIME_COST and 1 <= cost.parallelism <= _MAX_PARALLELISM
                and 8 * cost.parallelism <= cost.memory_kib <= _MAX_MEMORY_KIB):
            raise ValueError("argon2id cost out of bounds")
        return cost


# Above OWASP's argon2id recommendation (19 MiB, t=2): about 0.15 s per entry on a desk PC. Every
# entry pays it once per process (then it is held in memory), so a desk start costs about a second.
DEFAULT_COST = KdfCost(time_cost=2, memory_kib=64 * 1024, parallelism=1)
# keyrings.cryptfile's own defaults, for a file it made (it records no cost).
CRYPTFILE_COST = KdfCost(time_cost=15, memory_kib=64 * 1024, parallelism=2)


class FileKeyringError(KeyringError):
    """The encrypted keyring file cannot be used; the message says why and never holds the passphrase."""


class WrongPassphrase(FileKeyringError):
    """The passphrase does not open the file; nothing was read or changed."""


class KeyringLocked(FileKeyringError):
    """The file has not been unlocked in this process, so nothing in it can be read or written."""


def keyring_file(home: Path) -> Path:
    """Where a data folder's encrypted keyring file is."""
    return home / FILE_NAME


def normalise(passphrase: str) -> str:
    """The passphrase as it is fed to the KDF: Unicode NFC, so every input method types the same bytes."""
    return unicodedata.normalize("NFC", passphrase)


def passphrase_problems(passphrase: str) -> list[str]:
    """Why ``passphrase`` cannot protect a new keyring file; empty when it can. Never quotes it."""
    text = normalise(passphrase)
    problems = []
    if not text.strip():
        problems.append("the passphrase is empty")
    elif len(text) < MIN_PASSPHRASE:
        problems.append(f"the passphrase is shorter than {MIN_PASSPHRASE} characters")
    if len(text) > MAX_PASSPHRASE:
        problems.append(f"the passphrase is longer than {MAX_PASSPHRASE} characters")
    # A control character cannot be typed the same way twice at every terminal and dialog.
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        problems.append("the passphrase has a control character in it (tab, newline, escape ...)")
    if text != text.strip():
        problems.append("the passphrase starts or ends with a space")
    return problems


class EncryptedFileKeyring(CryptFileKeyring):  # type: ignore[misc]
    """keyrings.cryptfile's ``CryptFileKeyring`` on one file, opened only with a passphrase given to :meth:`unlock`.

    Locked, every read of an entry it holds and every write raises :class:`KeyringLocked` (a
    ``KeyringError``, which the vault and the chain keys already handle). Writes replace the file
    atomically and owner-only, so a crash mid-write never leaves a half-written keyring.
    """

    @properties.classproperty  # type: ignore[untyped-decorator,unused-ignore]
    @classmethod
    def priority(cls) -> float:
        # Never chosen by keyring's auto-detection nor by PYTHON_KEYRING_BACKEND: it needs a file and a
        # passphrase, which only the desk can give it.
        raise RuntimeError("the desk's encrypted keyring file is installed by the desk itself")

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._keyring_key: str | None = None
        self.file_path = str(path)
        self._use_cost(CRYPTFILE_COST)
        self._memory: dict[tuple[str, str], str | None] = {}
        self._memory_of: tuple[int, int, int] | None = None

    @property
    def path(self) -> Path:
        return Path(self.file_path)

    @property
    def unlocked(self) -> bool:
        return self._keyring_key is not None

    def _use_cost(self, cost: KdfCost) -> None:
        self.time_cost, self.memory_cost, self.parallelism = cost.time_cost, cost.memory_kib, cost.parallelism

    # -- unlocking ---------------------------------------------------------------------------

    def unlock(self, passphrase: str, *, prewarm: bool = False) -> None:
        """Open the file with ``passphrase``; :class:`WrongPassphrase` if it does not (nothing changes then).

        ``prewarm`` decrypts every entry now (off the GUI thread, say), so later reads cost nothing.
        """
        text = normalise(passphrase)
        if not text:
            raise WrongPassphrase("no passphrase was given")
        if len(text) > MAX_PASSPHRASE:
            raise WrongPassphrase(f"the passphrase is longer than {MAX_PASSPHRASE} characters; nothing was opened")
        if not self.path.is_file():
            raise FileKeyringError(f"there is no encrypted keyring file at {self.path}")
        config = self._read_config()
        recorded = config.get(escape_for_ini(_SETTING), escape_for_ini(_KDF_OPTION), fallback=None)
        try:
            self._use_cost(KdfCost.parse(recorded) if recorded is not None else CRYPTFILE_COST)
        except ValueError:
            raise FileKeyringError(f"the encrypted keyring file {self.path} records an unusable key-derivation "
                                   "cost; it was changed by something other than Bulwark") from None
        self._keyring_key = text
        try:
            reference = self._decrypt_entry(config, *_REFERENCE)
        except FileKeyringError:
            reference = None
        if reference != _REFERENCE_VALUE:
            self._keyring_key = None
            raise WrongPassphrase(f"wrong passphrase for the encrypted keyring file {self.path}; nothing was read "
                                  "or changed")
        self._memory.clear()
        self._memory_of = self._stamp()
        if prewarm:
            for section in config.sections():
                if section == escape_for_ini(_SETTING):
                    continue
                for option in config.options(section):
                    self.get_password(_unescape(section), _unescape(option))

    def lock(self) -> None:
        """Forget the passphrase and every decrypted entry."""
        self._keyring_key = None
        self._memory.clear()
        self._memory_of = None

    def _unlock(self) -> None:
        # keyrings.cryptfile asks on the terminal here; the desk asks in its own place and way.
        if self._keyring_key is None:
            raise KeyringLocked(f"the encrypted keyring file {self.path} is locked: this command did not unlock it")

    def _get_new_password(self) -> str:
        raise KeyringLocked(f"the encrypted keyring file {self.path} is locked: this command did not unlock it")

    def _create(self, passphrase: str, cost: KdfCost) -> None:
        self._use_cost(cost)
        self._keyring_key = normalise(passphrase)
        # What keyrings.cryptfile's _init_file writes, plus the cost it was written with.
        self._write_config_value(_SETTING, _KDF_OPTION, cost.text())
        self.set_password(*_REFERENCE, _REFERENCE_VALUE)
        self._write_config_value(_SETTING, "scheme", self.scheme)
        self._write_config_value(_SETTING, "version", self.version)

    # -- reading and writing -----------------------------------------------------------------

    def get_password(self, service: str, username: str) -> str | None:
        stamp = self._stamp()
        if stamp != self._memory_of:
            # Another process (``credentials set`` beside a running desk) changed the file.
            self._memory.clear()
            self._memory_of = stamp
        key = (service, username)
        if key in self._memory:
            return self._memory[key]
        value = self._decrypt_entry(self._read_config(), service, username)
        if self._keyring_key is not None:
            self._memory[key] = value
        return value

    def set_password(self, service: str, username: str, password: str) -> None:
        if not username:
            raise ValueError("the entry's name is empty")
        try:
            super().set_password(service, username, password)
        except (ValueError, TypeError, KeyringError):
            raise
        except Exception as exc:  # noqa: BLE001 - the cipher and configparser raise many kinds; say which, not what
            raise FileKeyringError(f"the encrypted keyring file {self.path} could not be written: "
                                   f"{type(exc).__name__}") from None
        self._memory[(service, username)] = password
        self._memory_of = self._stamp()

    def delete_password(self, service: str, username: str) -> None:
        self._unlock()
        with self._one_writer():
            config = self._read_config()
            try:
                removed = config.remove_option(escape_for_ini(service), escape_for_ini(username))
            except configparser.NoSectionError:
                removed = False
            if not removed:
                raise PasswordDeleteError("no such entry in the encrypted keyring file")
            self._write_config(config)
        self._memory.pop((service, username), None)
        self._memory_of = self._stamp()

    def _decrypt_entry(self, config: configparser.RawConfigParser, service: str, username: str) -> str | None:
        try:
            stored = config.get(escape_for_ini(service), escape_for_ini(username))
        except (configparser.NoSectionError, configparser.NoOptionError):
            return None
        self._check_version(config)
        assoc = self._generate_assoc(service, username)
        try:
            sealed = _decode(stored)
            try:
                plain: bytes = self.decrypt(sealed, assoc)
            except ValueError:
                # keyrings.cryptfile before 1.3 sealed entries without the associated data.
                plain = self.decrypt(sealed)
            return plain.decode("utf-8")
        except KeyringError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged entry, a changed file or a wrong key all end here
            raise FileKeyringError(f"an entry of the encrypted keyring file {self.path} could not be decrypted "
                                   f"({type(exc).__name__}): the file was changed or damaged") from None

    def _read_config(self) -> configparser.RawConfigParser:
        config = configparser.RawConfigParser()
        try:
            if self.path.exists():
                with open(self.path, encoding="utf-8") as fh:
                    config.read_file(fh)
        except (OSError, UnicodeError, configparser.Error) as exc:
            raise FileKeyringError(f"the encrypted keyring file {self.path} cannot be read: "
                                   f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
        return config

    def _write_config_value(self, service: str, key: str, value: str) -> None:
        with self._one_writer():
            config = self._read_config()
            section = escape_for_ini(service)
            if not config.has_section(section):
                config.add_section(section)
            config.set(section, escape_for_ini(key), value)
            self._write_config(config)

    @contextlib.contextmanager
    def _one_writer(self) -> Iterator[None]:
        """One writer at a time across processes (the desk and ``credentials set``): each write re-reads the
        file under the lock, so neither loses the other's entry. POSIX only; Windows writers are not serialised."""
        try:
            import fcntl
        except ImportError:
            yield
            return
        try:
            lock = open(self.path.with_name(self.path.name + ".lock"), "a")  # noqa: SIM115 - held across the yield
        except OSError as exc:
            raise FileKeyringError(f"the encrypted keyring file {self.path} cannot be locked for writing: "
                                   f"{exc.strerror or type(exc).__name__}") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write_config(self, config: configparser.RawConfigParser) -> None:
        folder = self.path.parent
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".keyring-", suffix=".tmp")  # 0600
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as fh:
                config.write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise FileKeyringError(f"the encrypted keyring file {self.path} could not be written: "
                                   f"{exc.strerror or type(exc).__name__}") from None

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns

    def __repr__(self) -> str:
        state = "unlocked" if self.unlocked else "locked"
        return f"<EncryptedFileKeyring {self.path} ({state})>"

    # keyring's own __str__ shows the priority, which this class refuses to have.
    __str__ = __repr__


def _unescape(name: str) -> str:
    text: str = unescape_from_ini(name)
    return text


def _decode(stored: str) -> bytes:
    from base64 import decodebytes

    return decodebytes(stored.encode("ascii"))


def create_file_keyring(home: Path, passphrase: str, *, cost: KdfCost | None = None) -> EncryptedFileKeyring:
    """Make a new encrypted keyring file in ``home``, protected by ``passphrase``; returns it unlocked.

    ``cost``: the argon2id cost of each entry, :data:`DEFAULT_COST` unless given (tests give a cheap one).

    Refuses (``FileKeyringError`` naming every problem) a passphrase :func:`passphrase_problems`
    rejects and a file that already exists: nothing is overwritten. The file appears whole or not at all.
    """
    problems = passphrase_problems(passphrase)
    if problems:
        raise FileKeyringError("; ".join(problems))
    chosen = cost if cost is not None else DEFAULT_COST
    target = keyring_file(home)
    if target.exists():
        raise FileKeyringError(f"an encrypted keyring file already exists at {target}; it was left as it is")
    handle, temporary = tempfile.mkstemp(dir=home, prefix=".keyring-new-", suffix=".tmp")
    os.close(handle)
    os.unlink(temporary)
    building = EncryptedFileKeyring(Path(temporary))
    try:
        building._create(passphrase, chosen)
        _place(Path(temporary), target)
    except FileExistsError:
        raise FileKeyringError(f"an encrypted keyring file already exists at {target}; it was left as it is") from None
    except OSError as exc:
        raise FileKeyringError(f"the encrypted keyring file {target} could not be created: "
                               f"{exc.strerror or type(exc).__name__}") from None
    finally:
        building.lock()
        for leftover in (temporary, f"{temporary}.lock"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
    made = EncryptedFileKeyring(target)
    made.unlock(passphrase)
    log.info("created the encrypted keyring file %s (%s)", target, chosen.text())
    return made


def _place(made: Path, target: Path) -> None:
    # A hard link, not a rename: it fails rather than replace a file another process made meanwhile.
    try:
        os.link(made, target)
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links (FAT, some network shares): look, then rename.
        if target.exists():
            raise FileExistsError(str(target)) from None
        os.replace(made, target)


def open_file_keyring(home: Path, passphrase: str, *, prewarm: bool = False) -> EncryptedFileKeyring:
    """The data folder's encrypted keyring file, unlocked; :class:`WrongPassphrase` or :class:`FileKeyringError`."""
    opened = EncryptedFileKeyring(keyring_file(home))
    opened.unlock(passphrase, prewarm=prewarm)
    return opened


def read_passphrase_fd(fd: int, *, timeout_s: float = 5.0) -> str:
    """One line (at most :data:`MAX_PASSPHRASE` characters) from file descriptor ``fd``, without its line end.

    ``FileKeyringError`` when nothing arrives within ``timeout_s`` (POSIX) or the descriptor is unusable.
    """
    limit = MAX_PASSPHRASE * 4 + 2  # UTF-8 is at most four bytes a character, then \r\n
    data = b""
    deadline = time.monotonic() + timeout_s
    try:
        while b"\n" not in data and len(data) <= limit:
            if os.name == "posix":
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise FileKeyringError(f"no passphrase arrived on file descriptor {fd} ({PASSPHRASE_FD_ENV}) "
                                           f"within {timeout_s:g} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise FileKeyringError(f"file descriptor {fd} ({PASSPHRASE_FD_ENV}) cannot be read: "
                               f"{exc.strerror or type(exc).__name__}") from None
    line = data.split(b"\n", 1)[0].removesuffix(b"\r")
    if len(line) > limit:
        raise FileKeyringError(f"the passphrase on file descriptor {fd} is longer than {MAX_PASSPHRASE} characters")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise FileKeyringError(f"the passphrase on file descriptor {fd} is not UTF-8 text") from None


def passphrase_fd() -> int | None:
    """The descriptor :data:`PASSPHRASE_FD_ENV` names, ``None`` when unset; ``FileKeyringError`` when it is not one."""
    text = os.environ.get(PASSPHRASE_FD_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise FileKeyringError(f"{PASSPHRASE_FD_ENV} must be a file descriptor number, such as 3")
    return int(text)


# -- the system's keyring and what to say about it --------------------------------------------------


def keyring_status(backend: KeyringBackend | None = None, *, advice: bool = True) -> str:
    """One plain sentence: which keyring the desk uses and whether it protects the desk's secrets.

    ``advice`` ends a sentence about a keyring that does not protect them with the command that sets
    up the encrypted file (a dialog that offers it itself leaves it out).
    """
    used: Any = backend if backend is not None else keyring.get_keyring()
    label = backend_label(used)
    if isinstance(used, EncryptedFileKeyring):
        if used.unlocked:
            return f"Secrets are in the encrypted keyring file {used.path}, unlocked with its passphrase: protected."
        return (f"Secrets are in the encrypted keyring file {used.path}, which is locked: protected, but this "
                "process cannot read them until its passphrase is given.")
    hint = "; set up the encrypted keyring file with  python main.py keyring use-file" if advice else "."
    if isinstance(used, fail.Keyring) or "null" in label.lower():
        return (f"No secure keyring: {label} stores nothing, so the Breeze credentials and the audit chain's key "
                f"cannot be kept{hint}")
    if not is_secure_backend(used):
        return (f"The keyring {label} does not protect secrets (plain text, or a chain that includes plain text), "
                f"so the desk keeps nothing in it{hint}")
    return f"Secrets are in the keyring {label}: protected by the operating system's keyring."


# -- the setting ---------------------------------------------------------------------------------

_SETTING_LINE = 'vault = "encrypted-file"\n'
_VAULT_KEY = re.compile(r"^\s*vault\s*=")
_TABLE = re.compile(r"^\s*\[")


def record_in_settings(settings_file: Path) -> None:
    """Write ``vault = "encrypted-file"`` into the settings file (``bulwark.toml``), keeping the rest as it was written.

    The line goes among the top-level keys (before the first table), replacing an earlier
    ``vault = ...``. The new text is parsed before it replaces the file; ``FileKeyringError``
    (the file unchanged) when it would not say ``vault = "encrypted-file"``.
    """
    try:
        text = settings_file.read_text(encoding="utf-8") if settings_file.exists() else ""
    except (OSError, UnicodeError) as exc:
        raise FileKeyringError(f"the settings file {settings_file} cannot be read: "
                               f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if _VAULT_KEY.match(line):
            lines[index] = _SETTING_LINE
            break
        if _TABLE.match(line):
            lines.insert(index, _SETTING_LINE)
            break
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(_SETTING_LINE)
    updated = "".join(lines)
    try:
        correct = tomllib.loads(updated).get("vault") == "encrypted-file"
    except tomllib.TOMLDecodeError:
        correct = False
    if not correct:
        raise FileKeyringError(f"could not add the line  {_SETTING_LINE.strip()}  to {settings_file} safely: add it "
                               "yourself among the top-level settings (before the first [table])")
    handle, temporary = tempfile.mkstemp(dir=settings_file.parent, prefix=".bulwark-toml-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as fh:
            fh.write(updated)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, settings_file)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise FileKeyringError(f"the settings file {settings_file} could not be written: "
                               f"{exc.strerror or type(exc).__name__}") from None

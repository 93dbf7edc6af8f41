"""Every string a provider sends, made fit to show: one printable line, bounded, with no part of
the poll's credential in it.

A provider's answer is hostile input: it may be a megabyte long, hold newlines or terminal
escapes, or quote back the token it was sent (a proxy's error page, a masked `flp_abcd1234…`).
`clean` is the one cut; the poller applies it to every string of an `Observation` and to every
failure message before status.py sees them, and `http.excerpt` to bodies (with the credential
of the poll in progress, `redacting`), so that status, Events and logs only ever carry bounded,
redacted text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

from .base import CREDENTIAL_SEPARATOR, Observation

__all__ = [
    "FRAGMENT_CHARS",
    "MASK",
    "MESSAGE_CHARS",
    "WORD_CHARS",
    "Redactor",
    "active_redactor",
    "clean",
    "clean_observation",
    "redacting",
    "redactor_for",
]

#: Status words and codes (providerStatus, providerPhase, errorCode): the CRD's maxLength.
WORD_CHARS = 128
#: Messages (errorMessage, condition and Event messages): the CRD's maxLength.
MESSAGE_CHARS = 1024
#: Any run of this many characters of a credential is taken for (part of) the credential.
FRAGMENT_CHARS = 8
MASK = "***"


class Redactor:
    """Masks the credential parts it was built from, and any word that holds a fragment of one
    of at least FRAGMENT_CHARS characters (the whole word goes: its other characters are likely
    the rest of the credential).

    Built once per credential (`redactor_for`): a word is a run of characters the credential
    uses, found by one compiled character class, so text without a long such run, the usual
    status word, costs one regex scan in C.
    """

    __slots__ = ("_fragments", "_runs", "_short", "longest")

    def __init__(self, secrets: Iterable[str]) -> None:
        parts = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.longest = len(parts[0]) if parts else 0
        # Too short to have fragments worth the name: masked only where they appear whole.
        self._short = tuple(s for s in parts if len(s) < FRAGMENT_CHARS)
        long = [s for s in parts if len(s) >= FRAGMENT_CHARS]
        self._fragments = frozenset(
            s[i : i + FRAGMENT_CHARS] for s in long for i in range(len(s) - FRAGMENT_CHARS + 1)
        )
        alphabet = "".join(sorted({ch for s in long for ch in s}))
        self._runs = (
            re.compile(f"[{re.escape(alphabet)}]{{{FRAGMENT_CHARS},}}") if alphabet else None
        )

    def __call__(self, text: str) -> str:
        for secret in self._short:
            if secret in text:
                text = text.replace(secret, MASK)
        if self._runs is None or len(text) < FRAGMENT_CHARS:
            return text
        pieces: list[str] = []
        done = 0
        for run in self._runs.finditer(text):
            if self._leaks(run.group()):
                pieces += (text[done : run.start()], MASK)
                done = run.end()
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    def _leaks(self, word: str) -> bool:
        fragments, size = self._fragments, FRAGMENT_CHARS
        return any(word[i : i + size] in fragments for i in range(len(word) - size + 1))


@functools.lru_cache(maxsize=1024)
def redactor_for(credential: str | None) -> Redactor | None:
    """The redactor of a poll's credential (its parts joined by CREDENTIAL_SEPARATOR, as an
    access key pair is), built once: polls of one account share it."""
    if not credential:
        return None
    return Redactor(credential.split(CREDENTIAL_SEPARATOR))


_active: ContextVar[Redactor | None] = ContextVar("inferenceops_redactor", default=None)


@contextlib.contextmanager
def redacting(redactor: Redactor | None) -> Iterator[None]:
    """While an adapter runs: the credential its requests carry, for `active_redactor`. A
    context variable reaches every excerpt the adapter cuts, in the tasks it starts too, without
    threading the secret through each adapter's calls."""
    token = _active.set(redactor)
    try:
        yield
    finally:
        _active.reset(token)


def active_redactor() -> Redactor | None:
    return _active.get()


def clean(text: str, limit: int, redactor: Redactor | None = None) -> str:
    """`text` as one printable line of at most `limit` characters (cut with "…"), masked by
    `redactor` first, so that a credential straddling the cut leaves no prefix behind.

    Only a window of `text` is read (what can reach the cut, plus a credential's length): a
    megabyte from a provider costs what a few KiB do. Returns `text` itself when it is fit as
    it is, the common case, so callers can tell nothing changed by identity.
    """
    if redactor is not None:
        window = 4 * limit + redactor.longest
        text = redactor(text[:window] if len(text) > window else text)
    if len(text) <= limit and text.isprintable():
        return text
    text = " ".join(text[: 4 * limit].split())
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_observation(obs: Observation, redactor: Redactor | None) -> Observation:
    """`obs` with every provider string cleaned; `obs` itself when none needed it (a steady
    poll: the scheduler compares it with the last one and writes nothing)."""
    status = clean(obs.provider_status, WORD_CHARS, redactor)
    phase, code, message = obs.provider_phase, obs.error_code, obs.error_message
    if phase is not None:
        phase = clean(phase, WORD_CHARS, redactor)
    if code is not None:
        code = clean(code, WORD_CHARS, redactor)
    if message is not None:
        message = clean(message, MESSAGE_CHARS, redactor)
    if (
        status is obs.provider_status
        and phase is obs.provider_phase
        and code is obs.error_code
        and message is obs.error_message
    ):
        return obs
    return dataclasses.replace(
        obs, provider_status=status, provider_phase=phase, error_code=code, error_message=message
    )

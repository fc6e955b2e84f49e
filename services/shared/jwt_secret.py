"""Where the JWT secret comes from, and which secrets are refused.

A secret printed in the source or in a sample file is public: anyone can sign a token
for any user with it. So there is no built-in default. Without `JWT_SECRET`, every
service reads the secret from the file `JWT_SECRET_FILE` names; the first service to
start on a fresh machine (or a fresh shared volume) creates that file with a random
256-bit secret, and every other service reads the same one. `make run` and
`docker compose up` keep working with no configuration, and no two installations share
a secret.

Creating the file races with the other services starting at the same moment. The
secret is written to a private temporary file first and then published with `link()`,
which, like `O_CREAT|O_EXCL`, fails when the name exists: exactly one writer wins, and
a reader never sees a half-written file, so every loser reads the winner's secret.
"""

from __future__ import annotations

import math
import os
import secrets
from collections import Counter
from itertools import pairwise
from pathlib import Path

# Secrets that were printed in this project's source, samples and docs, and the
# placeholders found in tutorials. Refused everywhere, not only in production.
KNOWN_PUBLIC_SECRETS = frozenset(
    {
        "dev-only-insecure-jwt-secret-change-me",
        "dev-only-secret-change-me",
        "change-me",
        "changeme",
        "secret",
        "your-256-bit-secret",
        "your-secret-key",
        "jwt-secret",
        "supersecret",
    }
)
MIN_LENGTH = 32
MIN_DISTINCT = 8
# Shannon estimate over the characters actually used; 32 random hex digits score ~110.
MIN_ESTIMATED_BITS = 80
GENERATED_BYTES = 32  # 256 bits
HOW_TO_MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class SecretProblem(ValueError):
    """Why a secret is refused; the caller names the variable it came from."""


def refuse_public(secret: str) -> None:
    """Refuse a secret known to the world, whatever the environment."""
    if secret.strip().lower() in KNOWN_PUBLIC_SECRETS:
        raise SecretProblem("is a publicly known default")


def refuse_weak(secret: str) -> None:
    """Refuse a secret an attacker could guess: short, few characters, repetitive, known."""
    refuse_public(secret)
    if len(secret) < MIN_LENGTH:
        raise SecretProblem(f"is shorter than {MIN_LENGTH} characters")
    if len(set(secret)) < MIN_DISTINCT:
        raise SecretProblem(f"uses fewer than {MIN_DISTINCT} distinct characters")
    if _is_periodic(secret) or _is_progression(secret) or _repeats_pieces(secret):
        raise SecretProblem("is repetitive")
    if _estimated_bits(secret) < MIN_ESTIMATED_BITS:
        raise SecretProblem("has too little entropy")


def _is_periodic(secret: str) -> bool:
    """True when the secret is a shorter unit repeated ("abcabcabc...")."""
    return secret in (secret + secret)[1:-1]


def _is_progression(secret: str) -> bool:
    """True when most steps between neighbours repeat ("abcdef...", "aaaa...", "9876...")."""
    steps = [ord(b) - ord(a) for a, b in pairwise(secret)]
    repeated = sum(1 for a, b in pairwise(steps) if a == b)
    return repeated * 2 > len(steps)


def _repeats_pieces(secret: str) -> bool:
    """True when many three-character pieces recur ("password1password2...")."""
    pieces = [secret[i : i + 3] for i in range(len(secret) - 2)]
    return len(set(pieces)) < 0.75 * len(pieces)


def _estimated_bits(secret: str) -> float:
    counts = Counter(secret)
    total = len(secret)
    per_char = -sum(n / total * math.log2(n / total) for n in counts.values())
    return per_char * total


def new_secret() -> str:
    """A random 256-bit secret, URL-safe so it survives any environment file."""
    return secrets.token_urlsafe(GENERATED_BYTES)


def read_or_create(path: Path) -> str:
    """The secret stored at `path`, created there first if no service has yet.

    The file is made with mode 0600 in a directory created with mode 0700. Raises
    OSError when the file can neither be read nor created, and SecretProblem when it
    is empty.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _publish(path, new_secret())
    return _read(path)  # ours, or the one another service published first


def _read(path: Path) -> str:
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise SecretProblem("is empty")
    return secret


def _publish(path: Path, secret: str) -> None:
    """Write `secret` to `path` unless it exists; never leave a partial file at `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secret + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)  # atomic; fails when another service won the race
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)

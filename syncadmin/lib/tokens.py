"""Secret tokens that are shown once and stored only as a hash: terminal API keys and users' API tokens.

A fast hash (SHA-256) is right for a 256-bit random token checked on every request: nobody can
guess such a token, so a slow password hash would only burn CPU. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def token_generate(prefix: str = "") -> str:
    """32 random bytes, URL-safe; ``prefix`` lets a leaked token be recognised (a secret scanner's rule)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: the SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_hash_matches(token: str, expected_hash: str) -> bool:
    """Whether ``token`` hashes to ``expected_hash``, in constant time."""
    return hmac.compare_digest(token_hash(token), expected_hash)

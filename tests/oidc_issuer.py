"""A local OpenID Connect issuer for tests: keys generated here, discovery document and JWKS on loopback.

It signs tokens like Entra ID would (RS256 with a `kid`, `iss`, `aud`, `exp`, `nbf`, `oid`, `sub`), rotates
its keys on request, counts the requests it serves (so tests observe caching and rate limiting from the
outside) and can be made to fail or stall. It also forges the classic attack tokens: `alg: none`, and HS256
"signed" with the public key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devtools.serving import ThreadedServer

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    published: bool = True

    @classmethod
    def generate(cls, algorithm: str = "RS256", *, published: bool = True) -> SigningKey:
        private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if algorithm.startswith("ES"):
            private_key = ec.generate_private_key(ec.SECP256R1())
        else:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(f"k-{secrets.token_hex(6)}", algorithm, private_key, published)

    def jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        data: dict[str, Any]
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class OidcIssuer:
    """The ASGI app of the issuer. `issuer` is set once the server knows its port."""

    issuer: str = ""
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.generate()])
    requests: Counter[str] = field(default_factory=Counter)  # "discovery" / "jwks" -> count
    fail_status: int | None = None  # answer every request with this status
    delay_seconds: float = 0.0  # stall every answer this long
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- keys and tokens ------------------------------------------------------------------------------

    @property
    def signing_key(self) -> SigningKey:
        return self.keys[0]

    def rotate(self, *, keep_old: bool = False) -> SigningKey:
        """A new signing key, published at once; the old ones stay published only with `keep_old`."""
        new = SigningKey.generate(self.signing_key.algorithm)
        with self._lock:
            self.keys = [new, *(self.keys if keep_old else [])]
        return new

    def reset(self) -> None:
        with self._lock:
            self.keys = [SigningKey.generate()]
            self.requests.clear()
            self.fail_status, self.delay_seconds = None, 0.0

    def claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "oid": "00000000-alice",
            "sub": "pairwise-alice",
            "tid": "tenant-1",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, audience: str, *, key: SigningKey | None = None, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        """A token signed by `key` (default: the current signing key); claims set to None are left out."""
        key = key or self.signing_key
        headers = {name: value for name, value in {"kid": key.kid, **(header or {})}.items() if value is not None}
        return jwt.encode(self.claims(audience, **claims), key.private_key, algorithm=key.algorithm, headers=headers)

    def unsigned_token(self, audience: str, **claims: Any) -> str:
        """`alg: none`: no signature at all."""
        header = {"alg": "none", "typ": "JWT", "kid": self.signing_key.kid}
        return f"{_segment(header)}.{_segment(self.claims(audience, **claims))}."

    def hs256_with_public_key(self, audience: str, **claims: Any) -> str:
        """The algorithm-confusion attack: HMAC-SHA256 keyed with the issuer's published public key."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.signing_key.kid}
        signing_input = f"{_segment(header)}.{_segment(self.claims(audience, **claims))}"
        mac = hmac.new(self.signing_key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    @staticmethod
    def tampered(token: str, **changes: Any) -> str:
        """The token with its payload changed and the original signature kept."""
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return f"{header}.{_segment({**claims, **changes})}.{signature}"

    # --- HTTP -----------------------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
        }

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [k.jwk() for k in self.keys if k.published]}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        routes = {"/.well-known/openid-configuration": ("discovery", self.discovery), "/keys": ("jwks", self.jwks)}
        if path in routes:
            name, body = routes[path]
            self.requests[name] += 1
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            status, payload = (self.fail_status, {"error": "failing"}) if self.fail_status else (200, body())
        else:
            status, payload = 404, {"error": "not found"}
        data = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


class OidcIssuerServer(ThreadedServer):
    """The issuer on 127.0.0.1 (free port) in a background thread; its issuer URL is its base URL."""

    def __init__(self) -> None:
        self.oidc = OidcIssuer()
        super().__init__(self.oidc, name="oidc-issuer")
        self.url = f"http://127.0.0.1:{self.port}"
        self.oidc.issuer = self.url

"""Who the caller is, decided by the app's settings and never by the client.

Three modes (`AuthConfig.mode`):
- `platform`: App Service authentication (Easy Auth) validated the caller and set the `X-MS-CLIENT-PRINCIPAL*`
  headers. They are honoured only when the platform says authentication is enabled (`WEBSITE_AUTH_ENABLED`),
  and the encoded principal must agree with the id header; otherwise nothing a client sends names an owner.
- `jwt`: the app validates `Authorization: Bearer` tokens itself with PyJWT: signature against the issuer's
  JWKS (fetched asynchronously with a timeout, cached, refreshed on an unknown `kid` at most once per
  interval), `iss`, `aud`, `exp`/`nbf` with a small leeway, and an allow-list of asymmetric algorithms.
- `none`: one shared owner, for local runs and single-tenant backends that hold the function key.

In Azure (`in_azure`) an unset mode is refused with `ConfigurationError` (answered 503, naming the setting)
instead of falling back to `none`; locally an unset mode means `none`.

The module knows nothing about HTTP frameworks: `Authenticator.authenticate` takes the request headers (any
case-insensitive mapping, e.g. Starlette's `Headers`) and returns a `Principal` or raises
`AuthenticationError` (401, with the `WWW-Authenticate` challenge to send) or `IdentityProviderUnavailableError`
(503: the issuer's keys cannot be fetched, so no token can be checked).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from agent_core.exceptions import ConfigurationError

from .settings import AppSettings

logger = logging.getLogger(__name__)

AuthMode = Literal["platform", "jwt", "none"]
AUTH_MODES: tuple[AuthMode, ...] = ("platform", "jwt", "none")
MODE_SETTING = "AGENT_AUTH_MODE"

# The owner of every session in `none` mode (also what sessions stored before auth modes existed carry).
SHARED_OWNER = "anonymous"

# Asymmetric algorithms only: never `none`, never HMAC (a public key must not become a shared secret).
ALGORITHM_KEY_TYPES: dict[str, tuple[type[Any], ...]] = {
    **{f"RS{bits}": (rsa.RSAPublicKey,) for bits in (256, 384, 512)},
    **{f"PS{bits}": (rsa.RSAPublicKey,) for bits in (256, 384, 512)},
    **{f"ES{bits}": (ec.EllipticCurvePublicKey,) for bits in (256, 384, 512)},
    "EdDSA": (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
}
DEFAULT_ALGORITHMS = ("RS256",)
MAX_TOKEN_CHARS = 16_384

# Claim types App Service puts the caller's id under, in the decoded X-MS-CLIENT-PRINCIPAL.
_ID_CLAIM_TYPES = frozenset(
    {
        "http://schemas.microsoft.com/identity/claims/objectidentifier",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
        "oid",
        "sub",
    }
)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


# --- configuration -----------------------------------------------------------------------------------


def _require_https(url: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
        return url
    raise ConfigurationError(f"{name} must be an https URL (plain http only on loopback), got {url!r}")


@dataclass(frozen=True)
class JwtConfig:
    """How bearer tokens are validated: one issuer, its audiences, where its keys are, which algorithms."""

    issuer: str
    audiences: tuple[str, ...]
    jwks_url: str | None = None  # None: from the issuer's OpenID discovery document
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: float = 60.0  # clock skew allowed on exp / nbf
    http_timeout_seconds: float = 5.0  # one discovery or JWKS request
    jwks_max_age_seconds: float = 3600.0  # keys are re-read this often, so a removed key stops working
    jwks_min_refresh_seconds: float = 30.0  # an unknown kid re-reads the keys at most this often

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ConfigurationError("AGENT_AUTH_ISSUER is required when AGENT_AUTH_MODE=jwt")
        _require_https(self.issuer, "AGENT_AUTH_ISSUER")
        if self.jwks_url is not None:
            _require_https(self.jwks_url, "AGENT_AUTH_JWKS_URL")
        if not self.audiences or not all(self.audiences):
            raise ConfigurationError("AGENT_AUTH_AUDIENCE is required when AGENT_AUTH_MODE=jwt")
        refused = [a for a in self.algorithms if a not in ALGORITHM_KEY_TYPES]
        if refused or not self.algorithms:
            raise ConfigurationError(
                f"AGENT_AUTH_ALGORITHMS: {refused or 'none given'} not allowed; "
                f"choose among the asymmetric algorithms {sorted(ALGORITHM_KEY_TYPES)}"
            )


@dataclass(frozen=True)
class AuthConfig:
    """The app's choice of mode, and what the platform says about itself."""

    mode: AuthMode | None  # None: not chosen
    in_azure: bool = False  # WEBSITE_INSTANCE_ID is set
    platform_auth_enabled: bool = False  # WEBSITE_AUTH_ENABLED: App Service authentication is on
    jwt: JwtConfig | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in AUTH_MODES:
            raise ConfigurationError(f"{MODE_SETTING} must be one of {', '.join(AUTH_MODES)}, got {self.mode!r}")
        if self.mode == "jwt" and self.jwt is None:
            raise ConfigurationError("AGENT_AUTH_MODE=jwt needs AGENT_AUTH_ISSUER and AGENT_AUTH_AUDIENCE")

    def effective_mode(self) -> AuthMode:
        """The mode in force; in Azure an unset mode is a configuration error, never a silent `none`."""
        if self.mode is not None:
            return self.mode
        if self.in_azure:
            raise ConfigurationError(
                f"{MODE_SETTING} is not set; in Azure choose it explicitly: platform (App Service "
                "authentication), jwt (bearer tokens checked by the app) or none (one shared owner)"
            )
        return "none"


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def auth_config(settings: AppSettings) -> AuthConfig:
    """The mode and its settings, and what the platform says about itself (`WEBSITE_INSTANCE_ID` in Azure,
    `WEBSITE_AUTH_ENABLED` when App Service authentication is on)."""
    jwt_config = None
    if settings.auth_mode == "jwt":
        if not settings.auth_issuer:
            raise ConfigurationError("AGENT_AUTH_MODE=jwt needs AGENT_AUTH_ISSUER (the tokens' issuer)")
        jwt_config = JwtConfig(
            issuer=settings.auth_issuer,
            audiences=_items(settings.auth_audience),
            jwks_url=settings.auth_jwks_url,
            algorithms=_items(settings.auth_algorithms),
        )
    return AuthConfig(
        mode=settings.auth_mode,
        in_azure=bool(settings.website_instance_id),
        platform_auth_enabled=settings.website_auth_enabled,
        jwt=jwt_config,
    )


# --- results and errors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The caller. `owner` is what sessions are stored under; it never comes from the client unchecked."""

    owner: str
    mode: AuthMode
    subject: str
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class AuthenticationError(Exception):
    """Missing or invalid credentials: 401, with `challenge` as the `WWW-Authenticate` header."""

    def __init__(self, detail: str, *, error: str | None = "invalid_token", realm: str = "agents") -> None:
        super().__init__(detail)
        self.detail = detail
        # RFC 6750 section 3: no error code when the request carried no credentials at all.
        parts = [f'realm="{realm}"']
        if error:
            parts += [f'error="{error}"', 'error_description="{}"'.format(detail.replace('"', "'"))]
        self.challenge = "Bearer " + ", ".join(parts)


class IdentityProviderUnavailableError(Exception):
    """The issuer's discovery document or keys cannot be fetched, so no token can be checked now: 503."""

    def __init__(self, detail: str, *, retry_after: float = 5.0) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


# --- platform (App Service authentication) -----------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value.strip() if value and value.strip() else None


def platform_principal(headers: Mapping[str, str]) -> Principal:
    """The principal App Service authentication set, checked for consistency (id header vs encoded claims)."""
    principal_id = _header(headers, "x-ms-client-principal-id")
    if principal_id is None:
        raise AuthenticationError("authentication required", error=None)
    encoded = _header(headers, "x-ms-client-principal")
    if encoded is None:
        raise AuthenticationError("the principal headers are inconsistent: X-MS-CLIENT-PRINCIPAL is missing")
    try:
        decoded = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True))
    except (binascii.Error, ValueError):
        raise AuthenticationError("X-MS-CLIENT-PRINCIPAL is not base64-encoded JSON") from None
    claims = decoded.get("claims") if isinstance(decoded, dict) else None
    provider = decoded.get("auth_typ") if isinstance(decoded, dict) else None
    if not isinstance(claims, list) or not isinstance(provider, str) or not provider:
        raise AuthenticationError("X-MS-CLIENT-PRINCIPAL has no auth_typ and claims")
    ids = {c.get("val") for c in claims if isinstance(c, dict) and c.get("typ") in _ID_CLAIM_TYPES}
    if principal_id not in ids:
        raise AuthenticationError("the principal headers are inconsistent: the id is not among the claims")
    idp = _header(headers, "x-ms-client-principal-idp")
    if idp is not None and idp.lower() != provider.lower():
        raise AuthenticationError("the principal headers are inconsistent: the identity provider differs")
    return Principal(owner=f"platform|{provider.lower()}|{principal_id}", mode="platform", subject=principal_id)


# --- jwt: the issuer's keys --------------------------------------------------------------------------


class JwksCache:
    """The issuer's signing keys by `kid`: fetched on first use, re-read when older than `jwks_max_age_seconds`
    or when a token names an unknown `kid` (at most once per `jwks_min_refresh_seconds`, so a flood of made-up
    kids costs one request per interval). One fetch at a time; concurrent callers wait for it."""

    def __init__(
        self, config: JwtConfig, http: httpx2.AsyncClient, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.http = http
        self.clock = clock
        self._jwks_url = config.jwks_url
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()

    def _fresh(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < self.config.jwks_max_age_seconds

    def _may_refresh(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.config.jwks_min_refresh_seconds

    async def key(self, kid: str) -> jwt.PyJWK:
        if self._fresh(self.clock()) and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            now = self.clock()
            stale = not self._fresh(now)
            if (stale or kid not in self._keys) and self._may_refresh(now):
                try:
                    await self._refresh()
                except IdentityProviderUnavailableError:
                    if kid not in self._keys:
                        raise
                    # Keys we hold keep working through an outage of the issuer; a removed key cannot be
                    # learned of until it answers again.
                    logger.warning("could not re-read the issuer's keys; using the cached ones", exc_info=True)
            if kid not in self._keys:
                raise AuthenticationError("the token is signed with an unknown key")
            return self._keys[kid]

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, timeout=self.config.http_timeout_seconds)
        except httpx2.HTTPError as exc:
            raise IdentityProviderUnavailableError(f"the issuer's {what} could not be fetched: {exc!r}") from exc
        if response.status_code != 200:
            raise IdentityProviderUnavailableError(f"the issuer's {what} answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise IdentityProviderUnavailableError(f"the issuer's {what} is not JSON") from None
        if not isinstance(data, dict):
            raise IdentityProviderUnavailableError(f"the issuer's {what} is not a JSON object")
        return data

    async def _discover(self) -> str:
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(url, "OpenID discovery document")
        # OpenID Connect Discovery 1.0, section 4.3: the document's issuer must be the one we asked.
        if document.get("issuer") != self.config.issuer:
            raise IdentityProviderUnavailableError(
                f"the discovery document names issuer {document.get('issuer')!r}, not {self.config.issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IdentityProviderUnavailableError("the discovery document has no jwks_uri")
        try:
            return _require_https(jwks_uri, "jwks_uri")
        except ConfigurationError as exc:
            raise IdentityProviderUnavailableError(str(exc)) from None

    async def _refresh(self) -> None:
        self._attempted_at = self.clock()
        if self._jwks_url is None:
            self._jwks_url = await self._discover()
        document = await self._get_json(self._jwks_url, "JWKS")
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise IdentityProviderUnavailableError("the issuer's JWKS has no keys")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
                continue  # encryption keys and shared secrets never verify a signature here
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                logger.info("skipping a key of the issuer's JWKS this app cannot use (kid %s)", entry["kid"])
        self._keys = keys
        self._fetched_at = self._attempted_at


# --- jwt: tokens -------------------------------------------------------------------------------------


def bearer_token(headers: Mapping[str, str]) -> str:
    authorization = _header(headers, "authorization")
    if authorization is None:
        raise AuthenticationError("a bearer token is required", error=None)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'", error="invalid_request")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthenticationError("the bearer token is too long")
    return token


class JwtValidator:
    """Checks one bearer token completely (signature, algorithm, issuer, audience, lifetime) or raises."""

    def __init__(self, config: JwtConfig, keys: JwksCache) -> None:
        self.config = config
        self.keys = keys

    async def principal(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("the bearer token is malformed") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in self.config.algorithms:
            raise AuthenticationError(f"the token's algorithm {algorithm!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("the token names no signing key (kid)")
        key = await self.keys.key(kid)
        if not isinstance(key.key, ALGORITHM_KEY_TYPES[algorithm]):
            raise AuthenticationError(f"the token's algorithm {algorithm!r} does not fit its signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=list(self.config.audiences),
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("the token's signature is not valid") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"the token is not valid: {exc}") from None
        # Entra ID: `oid` is the caller's object id, the same for every app; `sub` is per app. Others: `sub`.
        subject = claims.get("oid") or claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("the token has neither an oid nor a sub claim")
        return Principal(owner=f"jwt|{claims['iss']}|{subject}", mode="jwt", subject=subject, claims=claims)


# --- the resolver ------------------------------------------------------------------------------------


class Authenticator:
    """Resolves the caller of a request under the configured mode. One per process (it holds the key cache
    and, in jwt mode, its HTTP client, created on first use)."""

    def __init__(
        self,
        config: AuthConfig,
        *,
        http: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self._http = http
        self._owns_http = http is None
        self._validator: JwtValidator | None = None

    def _jwt(self) -> JwtValidator:
        if self._validator is None:
            assert self.config.jwt is not None  # AuthConfig refuses jwt mode without it
            if self._http is None:
                self._http = httpx2.AsyncClient(follow_redirects=False)
            self._validator = JwtValidator(self.config.jwt, JwksCache(self.config.jwt, self._http, clock=self.clock))
        return self._validator

    def reconfigure(self, config: AuthConfig) -> None:
        """New settings (tests, tooling): the key cache starts over, the HTTP client is kept."""
        self.config = config
        self._validator = None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        mode = self.config.effective_mode()
        if mode == "none":
            return Principal(owner=SHARED_OWNER, mode="none", subject=SHARED_OWNER)
        if mode == "platform":
            if not self.config.platform_auth_enabled:
                # The headers could come from anyone: without the platform in front, they name no one.
                raise ConfigurationError(
                    "AGENT_AUTH_MODE=platform but App Service authentication is not enabled for this app "
                    "(WEBSITE_AUTH_ENABLED is not set); enable it, or choose jwt"
                )
            return platform_principal(headers)
        return await self._jwt().principal(bearer_token(headers))

    async def close(self) -> None:
        if self._http is not None and self._owns_http:
            await self._http.aclose()
        self._http, self._validator = None, None

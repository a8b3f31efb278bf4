"""service/auth.py against a real local OpenID issuer (tests/oidc_issuer.py) over loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent_core.exceptions import ConfigurationError
from service.auth import (
    SHARED_OWNER,
    AuthConfig,
    AuthenticationError,
    Authenticator,
    IdentityProviderUnavailableError,
    JwtConfig,
    Principal,
)

from .oidc_issuer import OidcIssuer, SigningKey

AUDIENCE = "api://agents-test"


class Clock:
    """A monotonic clock the test moves by hand (cache ages and refresh intervals)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_auth(issuer: OidcIssuer, clock: Clock) -> AsyncIterator[Callable[..., Authenticator]]:
    """Authenticators in jwt mode for the test issuer (JwtConfig fields as keywords); closed afterwards."""
    made: list[Authenticator] = []

    def make(**jwt_fields: Any) -> Authenticator:
        config = JwtConfig(**{"issuer": issuer.issuer, "audiences": (AUDIENCE,), **jwt_fields})
        authenticator = Authenticator(AuthConfig(mode="jwt", jwt=config), clock=clock)
        made.append(authenticator)
        return authenticator

    yield make
    for authenticator in made:
        await authenticator.close()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- jwt: valid tokens ---------------------------------------------------------------------------------


async def test_valid_token_names_the_owner_by_issuer_and_oid(issuer: OidcIssuer, make_auth):
    principal = await make_auth().authenticate(bearer(issuer.token(AUDIENCE)))
    assert principal == Principal(owner=f"jwt|{issuer.issuer}|00000000-alice", mode="jwt", subject="00000000-alice")
    assert principal.claims["tid"] == "tenant-1"
    # Without Entra's oid the subject is the token's sub; two callers are two owners.
    bob = await make_auth().authenticate(bearer(issuer.token(AUDIENCE, oid=None, sub="bob")))
    assert bob.owner == f"jwt|{issuer.issuer}|bob"


async def test_any_configured_audience_and_a_small_clock_skew_are_accepted(issuer: OidcIssuer, make_auth):
    auth = make_auth(audiences=("other-client-id", AUDIENCE))
    now = int(time.time())
    # 30 s past expiry, or 30 s before nbf, is within the 60 s leeway (clocks differ a little).
    claim_sets: list[dict[str, Any]] = [{"exp": now - 30}, {"nbf": now + 30}]
    for claims in claim_sets:
        assert (await auth.authenticate(bearer(issuer.token(AUDIENCE, **claims)))).subject == "00000000-alice"


# --- jwt: every way a token is refused -----------------------------------------------------------------


def _refused_tokens(issuer: OidcIssuer) -> dict[str, tuple[dict[str, str], str]]:
    """name -> (headers, words of the refusal). Built per test: the issuer's keys are fresh each time."""
    now = int(time.time())
    stranger = SigningKey.generate(published=False)
    ec_key = SigningKey.generate("ES256")
    valid = issuer.token(AUDIENCE)
    return {
        "expired": (bearer(issuer.token(AUDIENCE, exp=now - 120, nbf=now - 900)), "expired"),
        "not yet valid": (bearer(issuer.token(AUDIENCE, nbf=now + 300, exp=now + 900)), "not valid yet"),
        "wrong audience": (bearer(issuer.token("api://someone-else")), "audience"),
        "wrong issuer": (bearer(issuer.token(AUDIENCE, iss="https://evil.example/")), "issuer"),
        "alg none": (bearer(issuer.unsigned_token(AUDIENCE)), "algorithm"),
        "HS256 with the public key": (bearer(issuer.hs256_with_public_key(AUDIENCE)), "algorithm"),
        "unknown kid": (bearer(issuer.token(AUDIENCE, key=stranger)), "unknown key"),
        "tampered payload": (bearer(issuer.tampered(valid, oid="00000000-mallory")), "signature"),
        "no exp": (bearer(issuer.token(AUDIENCE, exp=None)), "exp"),
        "no subject": (bearer(issuer.token(AUDIENCE, oid=None, sub=None)), "oid nor a sub"),
        "no kid": (bearer(issuer.token(AUDIENCE, header={"kid": None})), "no signing key"),
        "algorithm not allowed": (bearer(issuer.token(AUDIENCE, key=ec_key)), "algorithm"),
        "malformed": (bearer("not.a-jwt"), "malformed"),
        "not a bearer scheme": ({"authorization": f"Basic {valid}"}, "Bearer <token>"),
    }


REFUSALS = [
    "expired",
    "not yet valid",
    "wrong audience",
    "wrong issuer",
    "alg none",
    "HS256 with the public key",
    "unknown kid",
    "tampered payload",
    "no exp",
    "no subject",
    "no kid",
    "algorithm not allowed",
    "malformed",
    "not a bearer scheme",
]


@pytest.mark.parametrize("case", REFUSALS)
async def test_invalid_token_is_refused_with_a_bearer_challenge(issuer: OidcIssuer, make_auth, case: str):
    headers, words = _refused_tokens(issuer)[case]
    with pytest.raises(AuthenticationError) as refused:
        await make_auth().authenticate(headers)
    assert words in refused.value.detail
    assert refused.value.challenge.startswith('Bearer realm="agents", error="')
    assert "error_description=" in refused.value.challenge


def test_the_refusal_list_is_complete(issuer: OidcIssuer):
    assert sorted(_refused_tokens(issuer)) == sorted(REFUSALS)


async def test_missing_token_gets_a_challenge_without_an_error_code(make_auth):
    with pytest.raises(AuthenticationError) as refused:
        await make_auth().authenticate({})
    assert refused.value.challenge == 'Bearer realm="agents"'  # RFC 6750 3.1: no credentials, no error code


async def test_an_algorithm_that_does_not_fit_the_key_is_refused(issuer: OidcIssuer, make_auth):
    """ES256 allowed, but the kid names the RSA key: the header's alg must fit the published key's type."""
    ec_key = SigningKey.generate("ES256")
    token = issuer.token(AUDIENCE, key=ec_key, header={"kid": issuer.signing_key.kid})
    with pytest.raises(AuthenticationError, match="does not fit"):
        await make_auth(algorithms=("RS256", "ES256")).authenticate(bearer(token))
    # and an EC key the issuer publishes works when ES256 is allowed
    issuer.keys.append(ec_key)
    principal = await make_auth(algorithms=("RS256", "ES256")).authenticate(bearer(issuer.token(AUDIENCE, key=ec_key)))
    assert principal.subject == "00000000-alice"


# --- jwt: the issuer's keys ----------------------------------------------------------------------------


async def test_keys_come_from_discovery_once_and_are_cached(issuer: OidcIssuer, make_auth):
    auth = make_auth()
    for _ in range(5):
        await auth.authenticate(bearer(issuer.token(AUDIENCE)))
    assert issuer.requests == {"discovery": 1, "jwks": 1}


async def test_an_explicit_jwks_url_skips_discovery(issuer: OidcIssuer, make_auth):
    await make_auth(jwks_url=f"{issuer.issuer}/keys").authenticate(bearer(issuer.token(AUDIENCE)))
    assert issuer.requests == {"jwks": 1}


async def test_concurrent_first_requests_fetch_the_keys_once(issuer: OidcIssuer, make_auth):
    auth = make_auth()
    tokens = [issuer.token(AUDIENCE, sub=f"user-{i}", oid=None) for i in range(20)]
    principals = await asyncio.gather(*(auth.authenticate(bearer(t)) for t in tokens))
    assert len({p.owner for p in principals}) == 20
    assert issuer.requests == {"discovery": 1, "jwks": 1}


async def test_rotation_is_picked_up_without_a_restart(issuer: OidcIssuer, make_auth, clock: Clock):
    auth = make_auth()
    old_token = issuer.token(AUDIENCE)
    await auth.authenticate(bearer(old_token))
    clock.now += 31  # past the refresh interval
    issuer.rotate()  # the old key is withdrawn, a new one signs
    assert (await auth.authenticate(bearer(issuer.token(AUDIENCE)))).subject == "00000000-alice"
    assert issuer.requests["jwks"] == 2
    with pytest.raises(AuthenticationError, match="unknown key"):  # the withdrawn key no longer verifies
        await auth.authenticate(bearer(old_token))
    assert issuer.requests["jwks"] == 2  # and asking again so soon does not re-read the keys


async def test_unknown_kids_re_read_the_keys_at_most_once_per_interval(issuer: OidcIssuer, make_auth, clock: Clock):
    auth = make_auth()
    await auth.authenticate(bearer(issuer.token(AUDIENCE)))
    clock.now += 31
    for _ in range(10):  # a flood of made-up kids
        with pytest.raises(AuthenticationError, match="unknown key"):
            await auth.authenticate(bearer(issuer.token(AUDIENCE, key=SigningKey.generate(published=False))))
    assert issuer.requests["jwks"] == 2  # one re-read for the whole flood
    clock.now += 31
    with pytest.raises(AuthenticationError, match="unknown key"):
        await auth.authenticate(bearer(issuer.token(AUDIENCE, key=SigningKey.generate(published=False))))
    assert issuer.requests["jwks"] == 3


async def test_keys_are_re_read_when_old_so_a_withdrawn_key_stops_working(issuer: OidcIssuer, make_auth, clock: Clock):
    auth = make_auth()
    old_token = issuer.token(AUDIENCE)
    await auth.authenticate(bearer(old_token))
    issuer.rotate()
    clock.now += 3_601  # older than jwks_max_age_seconds
    with pytest.raises(AuthenticationError, match="unknown key"):
        await auth.authenticate(bearer(old_token))
    assert issuer.requests["jwks"] == 2


async def test_cached_keys_outlive_an_issuer_outage(issuer: OidcIssuer, make_auth, clock: Clock):
    auth = make_auth()
    token = issuer.token(AUDIENCE)
    await auth.authenticate(bearer(token))
    issuer.fail_status = 500
    clock.now += 3_601
    assert (await auth.authenticate(bearer(token))).subject == "00000000-alice"
    assert issuer.requests["jwks"] == 2  # it did try
    clock.now += 31
    with pytest.raises(IdentityProviderUnavailableError, match="500"):  # a kid it cannot know: 503, not 401
        await auth.authenticate(bearer(issuer.token(AUDIENCE, key=SigningKey.generate(published=False))))


@pytest.mark.parametrize("fault", ["status", "timeout", "wrong issuer in discovery"])
async def test_an_unreachable_issuer_is_unavailable_not_unauthorized(issuer: OidcIssuer, make_auth, fault: str):
    kwargs: dict[str, Any] = {}
    if fault == "status":
        issuer.fail_status = 503
    elif fault == "timeout":
        issuer.delay_seconds = 2.0
        kwargs["http_timeout_seconds"] = 0.2
    else:
        kwargs["issuer"] = issuer.issuer + "/"  # the discovery document names the issuer without the slash
    with pytest.raises(IdentityProviderUnavailableError):
        await make_auth(**kwargs).authenticate(bearer(issuer.token(AUDIENCE)))


async def test_fetching_keys_does_not_block_the_event_loop(issuer: OidcIssuer, make_auth):
    issuer.delay_seconds = 0.5
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await make_auth().authenticate(bearer(issuer.token(AUDIENCE)))
    finally:
        ticker.cancel()
    assert ticks >= 10  # other work ran while the keys were being fetched


# --- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"algorithms": ("HS256",)}, "not allowed"),
        ({"algorithms": ("none",)}, "not allowed"),
        ({"algorithms": ("RS256", "HS512")}, "not allowed"),
        ({"algorithms": ()}, "not allowed"),
        ({"issuer": ""}, "AGENT_AUTH_ISSUER"),
        ({"issuer": "http://login.example/"}, "https"),
        ({"jwks_url": "http://login.example/keys"}, "https"),
        ({"audiences": ()}, "AGENT_AUTH_AUDIENCE"),
        ({"audiences": ("",)}, "AGENT_AUTH_AUDIENCE"),
    ],
)
def test_unsafe_or_incomplete_jwt_settings_are_refused(fields: dict[str, Any], words: str):
    with pytest.raises(ConfigurationError, match=words):
        JwtConfig(**{"issuer": "https://login.example/", "audiences": (AUDIENCE,), **fields})


def test_mode_must_be_known_and_jwt_mode_needs_its_settings():
    with pytest.raises(ConfigurationError, match="AGENT_AUTH_MODE must be one of"):
        AuthConfig(mode="oauth")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="AGENT_AUTH_ISSUER"):
        AuthConfig(mode="jwt")


# --- none and unset ------------------------------------------------------------------------------------

SPOOFED = {
    "x-ms-client-principal-id": "alice-oid",
    "x-ms-client-principal-idp": "aad",
    "authorization": "Bearer whatever",
}


async def test_none_mode_gives_everyone_the_shared_owner_whatever_they_send():
    auth = Authenticator(AuthConfig(mode="none", in_azure=True))
    for headers in ({}, SPOOFED):
        assert (await auth.authenticate(headers)).owner == SHARED_OWNER


async def test_unset_mode_is_none_locally_and_refused_in_azure():
    assert (await Authenticator(AuthConfig(mode=None)).authenticate(SPOOFED)).owner == SHARED_OWNER
    with pytest.raises(ConfigurationError, match="AGENT_AUTH_MODE is not set"):
        await Authenticator(AuthConfig(mode=None, in_azure=True)).authenticate(SPOOFED)


# --- platform ------------------------------------------------------------------------------------------


def client_principal(provider: str = "aad", **claims: str) -> str:
    document = {
        "auth_typ": provider,
        "claims": [{"typ": typ, "val": val} for typ, val in claims.items()],
        "name_typ": "name",
        "role_typ": "roles",
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def platform_headers(principal_id: str = "alice-oid", /, **overrides: Any) -> dict[str, str]:
    headers = {
        "x-ms-client-principal-id": principal_id,
        "x-ms-client-principal-idp": "aad",
        "x-ms-client-principal": client_principal(**{OID_CLAIM: principal_id, "name": "Alice"}),
    }
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


async def test_platform_headers_name_the_owner_when_app_service_authentication_is_on():
    auth = Authenticator(AuthConfig(mode="platform", in_azure=True, platform_auth_enabled=True))
    principal = await auth.authenticate(platform_headers())
    assert principal == Principal(owner="platform|aad|alice-oid", mode="platform", subject="alice-oid")
    assert (await auth.authenticate(platform_headers("bob-oid"))).owner == "platform|aad|bob-oid"


async def test_platform_headers_are_ignored_when_app_service_authentication_is_off():
    auth = Authenticator(AuthConfig(mode="platform", in_azure=True, platform_auth_enabled=False))
    with pytest.raises(ConfigurationError, match="WEBSITE_AUTH_ENABLED"):
        await auth.authenticate(platform_headers())


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"x-ms-client-principal-id": None}, "authentication required"),
        ({"x-ms-client-principal": None}, "X-MS-CLIENT-PRINCIPAL is missing"),
        ({"x-ms-client-principal-id": "mallory-oid"}, "not among the claims"),
        ({"x-ms-client-principal-idp": "google"}, "identity provider differs"),
        ({"x-ms-client-principal": "%%%not-base64%%%"}, "base64"),
        ({"x-ms-client-principal": base64.b64encode(b"[1, 2]").decode()}, "auth_typ"),
    ],
)
async def test_inconsistent_platform_headers_are_refused(overrides: dict[str, str | None], words: str):
    auth = Authenticator(AuthConfig(mode="platform", platform_auth_enabled=True))
    with pytest.raises(AuthenticationError, match=words):
        await auth.authenticate(platform_headers(**overrides))

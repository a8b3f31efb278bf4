"""infra/'s side of "who the caller is" (README, "Security"), checked offline like tests/test_infra.py.

One parameter, `authMode`, chooses the mode; it is empty by default so a deployment never falls back to
`none` unasked (the app answers its user routes 503 until the mode is chosen). `platform` switches on
App Service authentication with Entra ID (authsettingsV2); the health route stays anonymous.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .test_infra import INFRA, ROOT, bicep, body, chain, condition, function, module, only, ternary, variable

AUTH_MODULE = "modules/app-auth.bicep"


def allowed(parameter: dict[str, Any]) -> list[Any]:
    return next(d["argument"] for d in parameter["decorators"] if d["type"] == "allowed")


def test_the_mode_is_one_parameter_and_not_chosen_by_default():
    params = bicep("main.bicep")["parameters"]
    mode = params["authMode"]
    assert mode["default"] == ""
    assert sorted(allowed(mode)) == ["", "jwt", "none", "platform"]
    for name in ("authClientId", "authAudience", "authIssuer"):
        assert params[name]["type"] == "string", name
        assert params[name]["default"] == "", name
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert mapped["authMode"]["value"] == "${AGENT_AUTH_MODE=}"
    assert mapped["authClientId"]["value"] == "${AZURE_API_CLIENT_ID=}"
    assert mapped["authAudience"]["value"] == "${AGENT_AUTH_AUDIENCE=}"
    assert mapped["authIssuer"]["value"] == "${AGENT_AUTH_ISSUER=}"


def test_app_service_authentication_is_deployed_only_in_platform_mode_and_wired_to_the_app():
    main = bicep("main.bicep")
    _, auth = module(main, AUTH_MODULE)
    assert condition(auth) == {
        "operator": {"type": "equals", "operands": {"operand_1": "authMode", "operand_2": "platform"}}
    }
    config = body(auth)
    assert config["scope"] == "rg"
    params = config["params"]
    assert chain(params["functionAppName"]) == ["functionApp", "outputs", "name"]
    assert params["clientId"] == "authClientId"
    assert params["allowedAudiences"] == "authAudiences"
    assert params["openIdIssuer"] == "authIssuerUrl"


def test_audiences_and_issuer_default_to_the_app_registration_and_this_tenant():
    main = bicep("main.bicep")
    audiences = ternary(variable(main, "authAudiences"))
    assert function(audiences["condition"], "empty") == {"item_to_test": "authAudience"}
    # Entra ID v2.0 access tokens carry the client id as aud, v1.0 tokens the application id URI.
    assert audiences["true_value"] == ["authClientId", "api://${authClientId}"]
    assert function(audiences["false_value"], "split") == {"input_string": "authAudience", "delimiter": ","}
    issuer = ternary(variable(main, "authIssuerUrl"))
    assert function(issuer["condition"], "empty") == {"item_to_test": "authIssuer"}
    assert issuer["true_value"] == "${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0"
    assert issuer["false_value"] == "authIssuer"


def test_authsettings_require_an_entra_id_token_except_on_the_health_route():
    auth = bicep(AUTH_MODULE)
    site = only(auth, "Microsoft.Web/sites")
    assert site["existing"] is True
    assert body(site)["name"] == "functionAppName"
    settings = body(only(auth, "Microsoft.Web/sites/config"))
    assert settings["parent"] == "functionApp"
    assert settings["name"] == "authsettingsV2"
    props = settings["properties"]
    assert props["platform"] == {"enabled": True}
    assert props["globalValidation"] == {
        "requireAuthentication": True,
        "unauthenticatedClientAction": "Return401",
        "excludedPaths": "excludedPaths",
    }
    assert props["httpSettings"] == {"requireHttps": True}
    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True
    assert aad["registration"] == {"clientId": "clientId", "openIdIssuer": "openIdIssuer"}  # no client secret
    assert aad["validation"] == {"allowedAudiences": "allowedAudiences"}
    assert set(props["identityProviders"]) == {"azureActiveDirectory"}
    assert props["login"] == {"tokenStore": {"enabled": False}}
    # A client id is required whenever the module is deployed (platform mode).
    for name in ("clientId", "allowedAudiences"):
        assert {"type": "min_length", "argument": 1} in auth["parameters"][name]["decorators"], name


def test_the_anonymous_paths_are_exactly_the_health_and_openapi_routes():
    excluded = bicep(AUTH_MODULE)["parameters"]["excludedPaths"]["default"]
    host = json.loads((ROOT / "host.json").read_text())
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    # The routes are registered in function_app.py or the app factory it calls.
    source = "\n".join(p.read_text() for p in [ROOT / "function_app.py", *(ROOT / "service").rglob("*.py")])
    anonymous = re.findall(r'route="([^"]+)"[^)]*auth_level=func\.AuthLevel\.ANONYMOUS', source)
    assert sorted(anonymous) == ["health", "openapi.json"]
    assert excluded == [f"/{prefix}/health", f"/{prefix}/openapi.json"]


def test_the_app_settings_follow_the_mode_and_are_absent_until_it_is_chosen():
    main = bicep("main.bicep")
    _, app = module(main, "modules/function-app.bicep")
    assert "authSettings" in function(body(app)["params"]["appSettings"], "union").values()
    chosen = ternary(variable(main, "authSettings"))
    assert function(chosen["condition"], "empty") == {"item_to_test": "authMode"}
    assert chosen["true_value"] == {}  # not chosen: AGENT_AUTH_MODE unset, user routes answer 503 in Azure
    mode, jwt = function(chosen["false_value"], "union").values()
    assert mode == {"AGENT_AUTH_MODE": "authMode"}
    jwt_only = ternary(jwt)
    assert jwt_only["condition"] == {
        "operator": {"type": "equals", "operands": {"operand_1": "authMode", "operand_2": "jwt"}}
    }
    assert jwt_only["false_value"] == {}
    settings = jwt_only["true_value"]
    assert settings["AGENT_AUTH_ISSUER"] == "authIssuerUrl"
    assert function(settings["AGENT_AUTH_AUDIENCE"], "join") is not None
    assert "authAudiences" in str(settings["AGENT_AUTH_AUDIENCE"])
    # The same issuer and audiences as App Service authentication gets in platform mode.
    _, auth = module(main, AUTH_MODULE)
    assert body(auth)["params"]["openIdIssuer"] == settings["AGENT_AUTH_ISSUER"]

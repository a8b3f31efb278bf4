"""infra/, azure.yaml and the deploy workflow, checked offline.

No Bicep compiler can be installed here or in CI, so every .bicep file is parsed with pycep-parser (a
Bicep grammar for Python) and its structure asserted: the resources exist, the app identity has exactly
the roles it needs at the right scopes, nothing uses keys, and the app settings the template sets are
exactly those agent_core reads (service/settings.py), with the same defaults.

What this cannot catch: type errors, wrong property names of Azure resource types, and the parameters of
the Azure Verified Modules, which only `bicep build` and a deployment check.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

from service.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
WORKFLOW = ROOT / ".github" / "workflows" / "azure-dev.yml"

# Built-in role definition ids (the same in every tenant).
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
AZURE_AI_USER = "53ca6127-db72-4b80-b1b0-d745d6d5456d"
KNOWN_ROLES = {BLOB_DATA_OWNER, QUEUE_DATA_CONTRIBUTOR, TABLE_DATA_CONTRIBUTOR, MONITORING_METRICS_PUBLISHER}
KNOWN_ROLES |= {OPENAI_USER, AZURE_AI_USER}

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
# What a deployment defaults each setting to: the app's default, or for a required setting (no default of ours,
# e.g. AGENT_SWEEP_SCHEDULE, which the host resolves) the value the sample settings hold.
DEPLOYED_DEFAULT = {s.name: s.sample if s.required else s.default for s in SETTINGS}

# App settings agent_core reads that the template leaves unset on purpose, although they have no default.
OPTIONAL_BY_DESIGN = {
    "AZURE_AI_PROJECT_ENDPOINT": "one of the two model endpoints is set, by the kind of endpoint",
    "AZURE_OPENAI_ENDPOINT": "one of the two model endpoints is set, by the kind of endpoint",
    "AZURE_OPENAI_API_VERSION": "the v1 Responses API needs no api-version",
    "AZURE_OPENAI_API_KEY": "key authentication; in Azure the app uses its identity",
    "OPENAI_API_KEY": "OpenAI (not Azure) with a key",
    "OPENAI_BASE_URL": "OpenAI or a compatible server (not Azure)",
    "OPENAI_RESPONSES_MODEL_ID": "OpenAI or a compatible server (not Azure)",
    "SessionStorage": "a connection string (Azurite); in Azure SessionStorage__tableServiceUri with the identity",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "an OTLP collector of your own; in Azure telemetry goes to Application Insights",
    "AGENT_AUTH_JWKS_URL": "jwt mode finds the issuer's keys by OpenID discovery",
    "WEBSITE_INSTANCE_ID": "set by the platform",
}
# Never set in Azure: keys, connection strings, and what Flex Consumption rejects
# or takes elsewhere (the runtime is functionAppConfig.runtime; AzureWebJobsStorage is identity-based).
FORBIDDEN_APP_SETTINGS = {
    "WEBSITE_INSTANCE_ID",  # the platform's own: a deployment setting them would lie about where the app runs
    "WEBSITE_AUTH_ENABLED",  # ... or make the app trust principal headers no platform checked
    "AZURE_OPENAI_API_KEY",
    "OPENAI_API_KEY",
    "SessionStorage",
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}
# Settings the platform (Functions host, Application Insights) reads, not agent_core.
PLATFORM_SETTING = re.compile(r"^(AzureWebJobsStorage__\w+|APPLICATIONINSIGHTS_\w+|AzureWebJobsFeatureFlags)$")


# ------------------------------------------------------------------ parsing


@functools.cache
def parser() -> BicepParser:
    return BicepParser()


@functools.cache
def bicep(relative: str) -> Any:
    """A parsed .bicep file under infra/ (pycep's JSON form; expressions stay unevaluated)."""
    return parser().parse(file_path=INFRA / relative)


def bicep_files() -> list[str]:
    return sorted(p.relative_to(INFRA).as_posix() for p in INFRA.rglob("*.bicep"))


def all_bicep() -> dict[str, Any]:
    return {f: bicep(f) for f in bicep_files()}


def body(entry: Any) -> Any:
    """A resource's or module's properties, without the `if (...)` / `for` wrapper."""
    config = entry["config"]
    if isinstance(config, dict) and ("condition" in config or "loop_type" in config) and "config" in config:
        return config["config"]
    return config


def condition(entry: Any) -> Any:
    config = entry["config"]
    return config.get("condition") if isinstance(config, dict) and "config" in config else None


def chain(expr: Any) -> list[str] | None:
    """`a.b.c`, `a::b::c` or `a.b['c']` as ['a', 'b', 'c']; a bare name or literal as [it]."""
    if isinstance(expr, str):
        return [expr]
    if isinstance(expr, dict) and "operator" in expr:
        op = expr["operator"]
        if op["type"] in ("property_accessor", "nested_resource_accessor", "index_accessor"):
            left, right = chain(op["operands"]["operand_1"]), chain(op["operands"]["operand_2"])
            if left is not None and right is not None:
                return left + right
    return None


def function(expr: Any, name: str) -> Any:
    """The parameters of `name(...)` when expr is that call, else None."""
    if isinstance(expr, dict) and "function" in expr and expr["function"]["type"] == name:
        return expr["function"].get("parameters", {})
    return None


def ternary(expr: Any) -> Any:
    if isinstance(expr, dict) and "operator" in expr and expr["operator"]["type"] == "conditional":
        return expr["operator"]["operands"]
    return None


def variable(doc: Any, expr: Any) -> Any:
    """A variable's value when expr names one, else expr."""
    if isinstance(expr, str) and expr in doc.get("variables", {}):
        return doc["variables"][expr]["value"]
    return expr


def module(doc: Any, path: str) -> tuple[str, Any]:
    """The one module of doc whose source is `path` (a local file or a registry reference): symbol, entry."""
    found = [(sym, m) for sym, m in doc.get("modules", {}).items() if m["detail"]["path"] == path]
    assert len(found) == 1, f"expected one module {path}, found {[s for s, _ in found]}"
    return found[0]


def resources(doc: Any, type_: str) -> dict[str, Any]:
    return {sym: r for sym, r in doc.get("resources", {}).items() if r["type"] == type_}


def only(doc: Any, type_: str) -> Any:
    [(_, entry)] = resources(doc, type_).items()
    return entry


def object_entries(doc: Any, expr: Any, params: dict[str, dict[str, list[Any]]] | None = None) -> dict[str, list[Any]]:
    """Every key an object expression may hold, with every value it may take: object literals, variables,
    union(...) and both branches of a ternary; `params` stands in for parameters of the file."""
    out: dict[str, list[Any]] = {}

    def add(entries: dict[str, list[Any]]) -> None:
        for key, values in entries.items():
            out.setdefault(key, []).extend(values)

    union = function(expr, "union")
    branches = ternary(expr)
    if union is not None:
        for arg in union.values():
            add(object_entries(doc, arg, params))
    elif branches is not None:
        add(object_entries(doc, branches["true_value"], params))
        add(object_entries(doc, branches["false_value"], params))
    elif isinstance(expr, str) and expr in doc.get("variables", {}):
        add(object_entries(doc, variable(doc, expr), params))
    elif isinstance(expr, str) and params is not None and expr in params:
        add(params[expr])
    elif isinstance(expr, dict) and "function" not in expr and "operator" not in expr:
        add({key.strip("'"): [value] for key, value in expr.items()})
    else:
        raise AssertionError(f"cannot tell which keys {expr!r} holds")
    return out


# ------------------------------------------------------------------ the app settings the template sets


def main_app_settings() -> dict[str, list[Any]]:
    """Settings main.bicep passes to the function app (values in main.bicep's terms)."""
    main = bicep("main.bicep")
    _, app = module(main, "modules/function-app.bicep")
    return object_entries(main, body(app)["params"]["appSettings"])


def module_app_settings() -> dict[str, list[Any]]:
    """Every app setting of the site (values of main's settings stay in main's terms)."""
    app = bicep("modules/function-app.bicep")
    [config] = [r for r in resources(app, "Microsoft.Web/sites/config").values() if body(r)["name"] == "appsettings"]
    return object_entries(app, body(config)["properties"], {"appSettings": main_app_settings()})


def app_setting_names() -> set[str]:
    return set(module_app_settings())


def parameter_default(doc: Any, expr: Any) -> tuple[str, str] | None:
    """When a setting's value is a parameter (`p`, `string(p)`, `p ? 'true' : 'false'`): the parameter and
    its default as the app would read it."""
    params = doc["parameters"]
    call = function(expr, "string")
    if call is not None:
        expr = next(iter(call.values()))
    branches = ternary(expr)
    if branches is not None and (branches["true_value"], branches["false_value"]) == ("true", "false"):
        expr = branches["condition"]
    if not (isinstance(expr, str) and expr in params):
        return None
    default = params[expr]["default"]
    text = ("true" if default else "false") if isinstance(default, bool) else str(default)
    return expr, text


# ------------------------------------------------------------------ files and modules


def test_every_bicep_file_parses_and_every_module_resolves():
    files = bicep_files()
    assert "main.bicep" in files
    assert len(files) >= 8, files
    used: set[str] = set()
    for relative, doc in all_bicep().items():
        assert doc["parameters"] or relative == "main.bicep", relative
        for symbol, entry in doc.get("modules", {}).items():
            detail = entry["detail"]
            if entry["type"] == "local":
                target = ((INFRA / relative).parent / detail["path"]).resolve()
                assert target.is_file(), f"{relative}: module {symbol} -> {detail['path']} does not exist"
                used.add(target.relative_to(INFRA).as_posix())
            else:
                # Azure Verified Modules from the public registry, pinned to one version.
                assert entry["type"] == "bicep_registry_alias", (relative, symbol, entry["type"])
                assert detail["alias"] == "public", (relative, detail)
                assert detail["path"].startswith("avm/res/"), (relative, detail)
                assert re.fullmatch(r"\d+\.\d+\.\d+", detail["tag"]), (relative, detail)
    assert set(files) - used == {"main.bicep"}, "modules under infra/ that nothing uses"


def test_main_is_subscription_scoped_and_tags_the_resource_group_for_azd():
    main = bicep("main.bicep")
    assert main["globals"]["scope"]["value"] == "subscription"
    rg = only(main, "Microsoft.Resources/resourceGroups")
    assert body(rg)["tags"] == "tags"
    assert variable(main, "tags") == {"'azd-env-name'": "environmentName"}
    location = main["parameters"]["location"]
    assert {"type": "metadata", "argument": {"azd": {"type": "location"}}} in location["decorators"]
    # Every other module is deployed into that resource group, except the roles on an existing model account.
    for symbol, entry in main["modules"].items():
        if symbol != "existingModelRbac":
            assert body(entry)["scope"] == "rg", symbol


# ------------------------------------------------------------------ function app


def test_function_app_runs_on_flex_consumption_with_python_and_its_identity():
    main = bicep("main.bicep")
    app = bicep("modules/function-app.bicep")

    _, plan = module(main, "avm/res/web/serverfarm")
    assert body(plan)["params"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert body(plan)["params"]["reserved"] is True  # Linux
    _, app_module = module(main, "modules/function-app.bicep")
    params = body(app_module)["params"]
    assert chain(params["planId"]) == ["appServicePlan", "outputs", "resourceId"]
    assert chain(params["identityResourceId"]) == ["appIdentity", "outputs", "resourceId"]
    assert chain(params["identityClientId"]) == ["appIdentity", "outputs", "clientId"]
    assert chain(params["storageAccountName"]) == ["storage", "outputs", "name"]
    for name in ("pythonVersion", "instanceMemoryMB", "maximumInstanceCount"):
        assert params[name] == name

    site = body(only(app, "Microsoft.Web/sites"))
    assert site["kind"] == "functionapp,linux"
    assert site["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {"'${identityResourceId}'": {}}}
    props = site["properties"]
    assert props["serverFarmId"] == "planId"
    assert props["httpsOnly"] is True
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert config["scaleAndConcurrency"] == {
        "instanceMemoryMB": "instanceMemoryMB",
        "maximumInstanceCount": "maximumInstanceCount",
    }
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["value"] == "${storage.properties.primaryEndpoints.blob}${deploymentContainerName}"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityResourceId",
    }
    # Basic (publishing profile) credentials are off: deployments use Entra ID.
    policies = resources(app, "Microsoft.Web/sites/basicPublishingCredentialsPolicies").values()
    allowed = sorted((body(p)["name"], body(p)["properties"]["allow"]) for p in policies)
    assert allowed == [("ftp", False), ("scm", False)]


def test_runtime_and_scale_parameters():
    params = bicep("main.bicep")["parameters"]
    python = params["pythonVersion"]
    allowed = next(d["argument"] for d in python["decorators"] if d["type"] == "allowed")
    # The project supports 3.11+ (pyproject.toml); Flex Consumption runs 3.11 and 3.12.
    assert python["default"] == "3.11"
    assert set(allowed) == {"3.11", "3.12"}
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text()
    memory = params["instanceMemoryMB"]
    assert memory["type"] == "int"
    assert memory["default"] == 2048
    assert next(d["argument"] for d in memory["decorators"] if d["type"] == "allowed") == [512, 2048, 4096]
    assert params["maximumInstanceCount"]["type"] == "int"
    assert params["maximumInstanceCount"]["default"] == 100


# ------------------------------------------------------------------ storage and monitoring


def test_storage_allows_no_keys_and_holds_the_package_container_and_sessions_table():
    storage = bicep("modules/storage.bicep")
    _, account = module(storage, "avm/res/storage/storage-account")
    params = body(account)["params"]
    assert params["allowSharedKeyAccess"] is False
    assert params["allowBlobPublicAccess"] is False
    assert params["minimumTlsVersion"] == "TLS1_2"
    assert params["blobServices"] == {"containers": [{"name": "deploymentContainerName"}]}
    [table] = resources(storage, "Microsoft.Storage/storageAccounts/tableServices/tables").values()
    assert body(table)["name"] == "sessionsTableName"

    main = bicep("main.bicep")
    _, storage_module = module(main, "modules/storage.bicep")
    assert body(storage_module)["params"]["sessionsTableName"] == "sessionsTableName"
    assert main["parameters"]["sessionsTableName"]["default"] == SETTINGS_BY_NAME["AGENT_SESSIONS_TABLE"].default
    # The same container is the function app's deployment storage.
    _, app_module = module(main, "modules/function-app.bicep")
    assert body(storage_module)["params"]["deploymentContainerName"] == "deploymentContainerName"
    assert body(app_module)["params"]["deploymentContainerName"] == "deploymentContainerName"


def test_application_insights_uses_entra_id_only_on_a_log_analytics_workspace():
    monitoring = bicep("modules/monitoring.bicep")
    _, component = module(monitoring, "avm/res/insights/component")
    params = body(component)["params"]
    assert params["disableLocalAuth"] is True
    assert chain(params["workspaceResourceId"]) == ["workspace", "outputs", "resourceId"]
    module(monitoring, "avm/res/operational-insights/workspace")
    settings = module_app_settings()
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == ["ClientId=${identityClientId};Authorization=AAD"]
    [connection] = settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert chain(connection) == ["appInsights", "properties", "ConnectionString"]


def test_host_storage_is_identity_based_and_blob_only():
    settings = module_app_settings()
    assert settings["AzureWebJobsStorage__credential"] == ["managedidentity"]
    assert settings["AzureWebJobsStorage__clientId"] == ["identityClientId"]
    [blob] = settings["AzureWebJobsStorage__blobServiceUri"]
    assert chain(blob) == ["storage", "properties", "primaryEndpoints", "blob"]
    # Timers take blob leases; nothing uses host queues (so no queue endpoint and no queue role).
    assert "AzureWebJobsStorage__queueServiceUri" not in settings
    assert "AzureWebJobsStorage" not in settings


# ------------------------------------------------------------------ model


def test_model_is_an_existing_endpoint_or_a_new_foundry_project():
    main = bicep("main.bicep")
    assert main["parameters"]["modelEndpoint"]["default"] == ""
    assert function(variable(main, "createFoundry"), "empty") == {"item_to_test": "modelEndpoint"}
    symbol, foundry = module(main, "modules/foundry.bicep")
    assert condition(foundry) == "createFoundry"
    endpoint = ternary(variable(main, "endpoint"))
    assert endpoint["condition"] == "createFoundry"
    assert chain(endpoint["true_value"]) == [symbol, "outputs", "projectEndpoint"]
    assert endpoint["false_value"] == "modelEndpoint"
    deployment = ternary(variable(main, "deploymentName"))
    assert chain(deployment["true_value"]) == [symbol, "outputs", "deploymentName"]
    assert deployment["false_value"] == "modelDeploymentName"
    # Exactly one endpoint setting, by the kind of endpoint.
    [kind] = [k for k, v in main["variables"].items() if ternary(v["value"]) and "AZURE_AI_PROJECT_ENDPOINT" in str(v)]
    branches = ternary(variable(main, kind))
    assert branches["condition"] == "useProjectEndpoint"
    assert branches["true_value"] == {"AZURE_AI_PROJECT_ENDPOINT": "endpoint"}
    assert branches["false_value"] == {"AZURE_OPENAI_ENDPOINT": "endpoint"}
    assert main_app_settings()["AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME"] == ["deploymentName"]

    created = bicep("modules/foundry.bicep")
    account = body(only(created, "Microsoft.CognitiveServices/accounts"))
    assert account["kind"] == "AIServices"
    assert account["properties"]["disableLocalAuth"] is True
    assert account["properties"]["allowProjectManagement"] is True
    assert account["properties"]["customSubDomainName"] == "accountName"
    project = body(only(created, "Microsoft.CognitiveServices/accounts/projects"))
    assert project["parent"] == "account"
    model = body(only(created, "Microsoft.CognitiveServices/accounts/deployments"))
    assert model["properties"]["model"] == {"format": "OpenAI", "name": "modelName", "version": "modelVersion"}
    assert model["name"] == "deploymentName"
    output = created["outputs"]["projectEndpoint"]["value"]
    assert chain(output) == ["project", "properties", "endpoints", "AI Foundry API"]


# ------------------------------------------------------------------ role assignments


@dataclass(frozen=True)
class Assignment:
    file: str
    symbol: str
    role: str
    principal: Any
    principal_type: Any
    scope: tuple[str, ...]
    condition: Any
    name: Any


def assignments(docs: dict[str, Any]) -> list[Assignment]:
    found = []
    for file, doc in docs.items():
        for symbol, entry in resources(doc, "Microsoft.Authorization/roleAssignments").items():
            b = body(entry)
            role_call = function(b["properties"]["roleDefinitionId"], "subscription_resource_id")
            assert role_call is not None, f"{file}:{symbol}: roleDefinitionId is not subscriptionResourceId(...)"
            assert role_call["resource_type"] == "Microsoft.Authorization/roleDefinitions", (file, symbol)
            found.append(
                Assignment(
                    file=file,
                    symbol=symbol,
                    role=variable(doc, role_call["resource_name_1"]),
                    principal=b["properties"].get("principalId"),
                    principal_type=b["properties"].get("principalType"),
                    scope=tuple(chain(b.get("scope")) or ()),
                    condition=condition(entry),
                    name=b["name"],
                )
            )
    return found


# The app identity's roles: (file, role, scope, condition). Each exactly once, nothing else.
APP_ROLES = {
    ("modules/rbac.bicep", BLOB_DATA_OWNER, ("storageAccount",), None),
    ("modules/rbac.bicep", TABLE_DATA_CONTRIBUTOR, ("storageAccount", "tableService", "sessionsTable"), None),
    ("modules/rbac.bicep", MONITORING_METRICS_PUBLISHER, ("appInsights",), None),
    ("modules/model-rbac.bicep", OPENAI_USER, ("account",), None),
    ("modules/model-rbac.bicep", AZURE_AI_USER, ("account",), "projectEndpoint"),
}
SCOPE_TYPES = {
    "storageAccount": "Microsoft.Storage/storageAccounts",
    "storageAccount__tableService__sessionsTable": "Microsoft.Storage/storageAccounts/tableServices/tables",
    "appInsights": "Microsoft.Insights/components",
    "account": "Microsoft.CognitiveServices/accounts",
}


def role_problems(docs: dict[str, Any]) -> list[str]:
    """What is wrong with the role assignments of these files (empty: nothing)."""
    problems = []
    found = assignments(docs)
    app = [a for a in found if a.principal == "appPrincipalId"]
    users = [a for a in found if a.principal != "appPrincipalId"]
    got = sorted((a.file, a.role, a.scope, a.condition) for a in app)
    if got != sorted(APP_ROLES, key=str):
        problems.append(f"app identity roles differ:\n got {got}\nwant {sorted(APP_ROLES, key=str)}")
    for a in found:
        where = f"{a.file}:{a.symbol}"
        if a.role not in KNOWN_ROLES:
            problems.append(f"{where}: unexpected role {a.role}")
        if a.role == QUEUE_DATA_CONTRIBUTOR:
            problems.append(f"{where}: the host uses no queues (timers take blob leases)")
        # guid(scope, principal, role): one stable assignment per scope, principal and role.
        name = function(a.name, "guid")
        args = [] if name is None else [str(v) for v in name.values()]
        role_names = {k for k, v in docs[a.file].get("variables", {}).items() if v["value"] == a.role} | {a.role}
        if a.principal not in args or not role_names & set(args):
            problems.append(f"{where}: name is not guid(scope, principal, role)")
        scope_symbol = "__".join(a.scope)
        scope_type = SCOPE_TYPES.get(scope_symbol)
        resource = docs[a.file]["resources"].get(scope_symbol)
        if scope_type is None or resource is None or resource["type"] != scope_type or not resource["existing"]:
            problems.append(f"{where}: scope {a.scope} is not the existing resource it should be")
    for a in app:
        if a.principal_type != "ServicePrincipal":
            problems.append(f"{a.file}:{a.symbol}: principalType {a.principal_type!r}, want 'ServicePrincipal'")
    for a in users:
        where = f"{a.file}:{a.symbol}"
        if a.principal != "userPrincipalId" or a.principal_type != "userPrincipalType":
            problems.append(f"{where}: a role for {a.principal!r} ({a.principal_type!r})")
        if "'not'" not in str(a.condition) or "userPrincipalId" not in str(a.condition):
            problems.append(f"{where}: the user's role must be conditional on userPrincipalId")
    return problems


def test_the_app_identity_has_exactly_the_roles_it_needs():
    assert role_problems(all_bicep()) == []
    roles = {a.role for a in assignments(all_bicep())}
    assert QUEUE_DATA_CONTRIBUTOR not in roles
    # The deploying user's roles (local runs): the sessions table and the model, no host storage.
    users = {(a.file, a.role) for a in assignments(all_bicep()) if a.principal == "userPrincipalId"}
    assert users == {
        ("modules/rbac.bicep", TABLE_DATA_CONTRIBUTOR),
        ("modules/model-rbac.bicep", OPENAI_USER),
        ("modules/model-rbac.bicep", AZURE_AI_USER),
    }


def test_role_check_fails_when_a_role_goes_missing_or_changes():
    text = (INFRA / "modules" / "rbac.bicep").read_text()
    start = text.index("resource appTableDataContributor")
    end = text.index("\n}\n", start) + 3
    without_table_role = text[:start] + text[end:]
    service_principal_as_user = text.replace("principalType: 'ServicePrincipal'", "principalType: 'User'", 1)
    queue_role = text.replace(BLOB_DATA_OWNER, QUEUE_DATA_CONTRIBUTOR)
    for mutated in (without_table_role, service_principal_as_user, queue_role):
        docs = {**all_bicep(), "modules/rbac.bicep": parser().parse(text=mutated)}
        assert role_problems(docs), "the role check missed a change"


def test_role_modules_are_wired_to_the_app_identity():
    main = bicep("main.bicep")
    rbac_symbol, rbac = module(main, "modules/rbac.bicep")
    assert condition(rbac) is None
    params = body(rbac)["params"]
    assert chain(params["appPrincipalId"]) == ["appIdentity", "outputs", "principalId"]
    assert params["sessionsTableName"] == "sessionsTableName"
    assert params["userPrincipalId"] == "deployerPrincipalId"
    assert chain(params["storageAccountName"]) == ["storage", "outputs", "name"]
    assert chain(params["appInsightsName"]) == ["monitoring", "outputs", "appInsightsName"]
    # The app starts after its roles exist.
    _, app = module(main, "modules/function-app.bicep")
    assert rbac_symbol in body(app)["dependsOn"]

    model_roles = {sym: m for sym, m in main["modules"].items() if m["detail"]["path"] == "modules/model-rbac.bicep"}
    assert {condition(m) for m in model_roles.values()} == {"createFoundry", "grantExistingModelRoles"}
    for m in model_roles.values():
        model_params = body(m)["params"]
        assert chain(model_params["appPrincipalId"]) == ["appIdentity", "outputs", "principalId"]
        assert model_params["userPrincipalId"] == "deployerPrincipalId"
    [created] = [m for m in model_roles.values() if condition(m) == "createFoundry"]
    assert body(created)["params"]["projectEndpoint"] is True
    [existing] = [m for m in model_roles.values() if condition(m) == "grantExistingModelRoles"]
    assert body(existing)["params"]["projectEndpoint"] == "useProjectEndpoint"
    # The deploying user gets roles only when asked (off in CI).
    deployer = ternary(variable(main, "deployerPrincipalId"))
    assert (deployer["condition"], deployer["true_value"], deployer["false_value"]) == (
        "grantDeployerAccess",
        "principalId",
        "",
    )


# ------------------------------------------------------------------ app settings: the consistency test


def test_app_settings_are_exactly_what_the_app_reads():
    names = app_setting_names()
    registered = set(SETTINGS_BY_NAME)
    # Nothing that nothing reads.
    unknown = {n for n in names if n not in registered and not PLATFORM_SETTING.match(n)}
    assert not unknown, f"app settings nothing reads: {unknown}"
    assert not names & FORBIDDEN_APP_SETTINGS, names & FORBIDDEN_APP_SETTINGS

    # Everything the app reads is set, or optional: a default in SETTINGS, or optional by design.
    for setting in SETTINGS:
        if setting.where != "app":
            continue
        assert setting.name in names or setting.default is not None or setting.name in OPTIONAL_BY_DESIGN, (
            f"{setting.name} is read by the app, has no default and the template does not set it"
        )
    assert set(OPTIONAL_BY_DESIGN) <= registered
    # Both endpoint settings exist, in exclusive branches (checked in the model test).
    assert {"AZURE_AI_PROJECT_ENDPOINT", "AZURE_OPENAI_ENDPOINT"} <= names

    # Host settings: AzureWebJobsStorage as an identity-based connection, the runtime in functionAppConfig.
    host = {s.name: s for s in SETTINGS if s.where == "host"}
    assert set(host) == {
        "AzureWebJobsStorage",
        "FUNCTIONS_WORKER_RUNTIME",
        "PYTHON_ENABLE_INIT_INDEXING",
        "AGENT_SWEEP_SCHEDULE",
    }
    assert "AGENT_SWEEP_SCHEDULE" in names  # required: the host resolves it, no default of ours applies
    assert {f"AzureWebJobsStorage__{p}" for p in ("credential", "clientId", "blobServiceUri")} <= names
    site = body(only(bicep("modules/function-app.bicep"), "Microsoft.Web/sites"))
    assert site["properties"]["functionAppConfig"]["runtime"]["name"] == host["FUNCTIONS_WORKER_RUNTIME"].sample
    assert module_app_settings()["PYTHON_ENABLE_INIT_INDEXING"] == [host["PYTHON_ENABLE_INIT_INDEXING"].sample]


def test_settings_bound_in_function_app_py_are_set():
    """`%NAME%` in a trigger is resolved by the host from app settings: a default in SETTINGS is no help."""
    from service.app import create_app  # what function_app.py serves

    bindings = json.dumps([function.get_bindings_dict() for function in create_app().get_functions()], default=str)
    bound = set(re.findall(r"%(\w+)%", bindings))
    assert "AGENT_SWEEP_SCHEDULE" in bound
    assert bound <= app_setting_names()


def test_app_settings_come_from_resources_and_parameters_never_literals():
    settings = module_app_settings()
    assert settings["AZURE_CLIENT_ID"] == ["identityClientId"]
    assert settings["SessionStorage__clientId"] == ["identityClientId"]
    [table] = settings["SessionStorage__tableServiceUri"]
    assert chain(table) == ["storage", "properties", "primaryEndpoints", "table"]
    for name, values in main_app_settings().items():
        for value in values:
            assert value not in ("", None), name
            assert not (isinstance(value, str) and value.startswith("http")), name


def test_parameter_defaults_match_the_app_defaults():
    main = bicep("main.bicep")
    checked = set()
    for name, values in main_app_settings().items():
        for value in values:
            bound = parameter_default(main, value)
            if bound is None:
                continue
            parameter, default = bound
            if default == "" and DEPLOYED_DEFAULT[name] is None:
                continue  # empty is unset (the app ignores empty settings): no default on either side
            assert DEPLOYED_DEFAULT[name] == default, f"{name}: parameter {parameter} defaults to {default}"
            checked.add(name)
    with_default = {n for n in main_app_settings() if DEPLOYED_DEFAULT[n] is not None}
    assert checked == with_default
    assert {"AGENT_SESSION_TTL_SECONDS", "AGENT_DELETE_SERVICE_CONVERSATIONS", "AGENT_SWEEP_SCHEDULE"} <= checked


def test_every_setting_is_in_the_sample_settings_and_the_readme():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    readme = (ROOT / "README.md").read_text()
    for setting in SETTINGS:
        assert setting.name in sample, setting.name
        assert f"| `{setting.name}` |" in readme, f"{setting.name} is missing from the README settings table"


# ------------------------------------------------------------------ no secrets


def infra_texts() -> dict[str, str]:
    paths = [*INFRA.rglob("*.bicep"), *INFRA.rglob("*.json"), ROOT / "azure.yaml", WORKFLOW]
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in paths}


def test_no_keys_or_secret_looking_values():
    for path, text in infra_texts().items():
        for pattern in (
            r"listKeys\(",
            r"listConnectionStrings\(",
            r"listAccountSas\(",
            r"AccountKey=",
            r"SharedAccessSignature",
            r"InstrumentationKey=",
            r"@secure\(\)",
            r"secrets\.",
        ):
            assert not re.search(pattern, text), f"{path}: {pattern}"
        # No hard-coded ids or tokens: the only GUIDs are built-in role definitions.
        for guid in re.findall(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", text):
            assert guid.lower() in KNOWN_ROLES, f"{path}: hard-coded id {guid}"
        # Keys and tokens: long runs of base64 mixing digits and both cases (paths and names have no digits).
        for token in re.findall(r"[A-Za-z0-9+/]{32,}={0,2}", text):
            if re.search(r"\d", token) and re.search(r"[a-z]", token) and re.search(r"[A-Z]", token):
                pytest.fail(f"{path}: secret-looking value {token[:6]}...")


def test_parameters_file_only_maps_azd_environment_values():
    main = bicep("main.bicep")["parameters"]
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(values) <= set(main), set(values) - set(main)
    required = {name for name, p in main.items() if p["default"] is None}
    assert required <= set(values), required - set(values)
    for name, entry in values.items():
        match = re.fullmatch(r"\$\{(\w+)(?:=(.*))?\}", entry["value"])
        assert match, f"{name}: {entry['value']!r} is not an azd environment reference"
        variable_name, default = match.groups()
        bicep_default = main[name]["default"]
        if bicep_default is not None:
            # azd and a plain deployment (Bicep defaults) agree.
            expected = ("true" if bicep_default else "false") if isinstance(bicep_default, bool) else str(bicep_default)
            assert default == expected, f"{name}: {default!r} in main.parameters.json, {expected!r} in main.bicep"
        if variable_name in SETTINGS_BY_NAME:
            assert default == (DEPLOYED_DEFAULT[variable_name] or ""), variable_name  # empty is unset
    assert values["principalId"]["value"] == "${AZURE_PRINCIPAL_ID=}"


# ------------------------------------------------------------------ azd


def test_outputs_that_azd_and_local_runs_need():
    main = bicep("main.bicep")
    outputs = main["outputs"]
    assert outputs["AZURE_LOCATION"]["value"] == "location"
    tenant = outputs["AZURE_TENANT_ID"]["value"]["operator"]
    assert tenant["type"] == "property_accessor"
    assert tenant["operands"] == {"operand_1": {"function": {"type": "tenant"}}, "operand_2": "tenantId"}
    assert chain(outputs["AZURE_RESOURCE_GROUP"]["value"]) == ["rg", "name"]
    services = yaml.safe_load((ROOT / "azure.yaml").read_text())["services"]
    [service] = services
    key = service.upper()
    assert chain(outputs[f"SERVICE_{key}_NAME"]["value"]) == ["functionApp", "outputs", "name"]
    assert chain(outputs[f"SERVICE_{key}_URI"]["value"]) == ["functionApp", "outputs", "uri"]
    assert chain(outputs["AZURE_FUNCTION_NAME"]["value"]) == ["functionApp", "outputs", "name"]
    for name in ("AZURE_AI_PROJECT_ENDPOINT", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME"):
        assert name in outputs
    # azd finds the app by its service tag.
    site = body(only(bicep("modules/function-app.bicep"), "Microsoft.Web/sites"))
    tags = function(site["tags"], "union")
    assert {"'azd-service-name'": service} in tags.values()
    assert "uri" in bicep("modules/function-app.bicep")["outputs"]


def test_azure_yaml_deploys_this_directory_as_one_python_function_service():
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    [service] = config["services"].values()
    assert service["host"] == "function"
    assert service["language"] in ("py", "python")
    project = ROOT / service["project"]
    for needed in ("function_app.py", "host.json", "requirements.txt"):
        assert (project / needed).is_file(), needed
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}


# ------------------------------------------------------------------ network


def test_virtual_network_is_optional_and_storage_goes_private_with_it():
    main = bicep("main.bicep")
    assert main["parameters"]["vnetEnabled"]["default"] is False
    for path in ("modules/network.bicep", "modules/storage-private-endpoints.bicep"):
        assert condition(module(main, path)[1]) == "vnetEnabled", path
    _, app = module(main, "modules/function-app.bicep")
    subnet = ternary(body(app)["params"]["subnetId"])
    assert (subnet["condition"], subnet["false_value"]) == ("vnetEnabled", "")

    network = bicep("modules/network.bicep")
    subnets = body(only(network, "Microsoft.Network/virtualNetworks"))["properties"]["subnets"]
    delegations = [d["properties"]["serviceName"] for s in subnets for d in s["properties"].get("delegations", [])]
    assert delegations == ["Microsoft.App/environments"]  # Flex Consumption's integration subnet

    endpoints = bicep("modules/storage-private-endpoints.bicep")
    assert endpoints["parameters"]["services"]["default"] == ["blob", "table"]  # no queue: the app uses none
    module(endpoints, "avm/res/network/private-endpoint")
    module(endpoints, "avm/res/network/private-dns-zone")

    storage = bicep("modules/storage.bicep")
    access = ternary(body(module(storage, "avm/res/storage/storage-account")[1])["params"]["publicNetworkAccess"])
    assert (access["condition"], access["true_value"], access["false_value"]) == ("vnetEnabled", "Disabled", "Enabled")


# ------------------------------------------------------------------ workflow


def test_workflow_deploys_with_azd_over_oidc_after_the_infra_checks():
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    jobs = workflow["jobs"]
    validate = " ".join(str(step.get("run", "")) for step in jobs["validate"]["steps"])
    assert "pytest tests/test_infra.py" in validate
    assert "requirements-dev.txt" in validate

    deploy = jobs["deploy"]
    assert deploy["needs"] == "validate"
    assert deploy["permissions"]["id-token"] == "write"
    runs = [str(step.get("run", "")) for step in deploy["steps"]]
    uses = [str(step.get("uses", "")) for step in deploy["steps"]]
    assert any(u.startswith("Azure/setup-azd@") for u in uses)
    [login] = [r for r in runs if "azd auth login" in r]
    assert '--federated-credential-provider "github"' in login
    assert "--client-secret" not in text
    assert "secrets." not in text
    assert {"azd provision --no-prompt", "azd deploy --no-prompt"} <= set(runs)
    assert deploy["env"]["AZURE_GRANT_DEPLOYER_ACCESS"] == "false"
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_ENV_NAME", "AZURE_LOCATION"):
        assert deploy["env"][name] == f"${{{{ vars.{name} }}}}", name
    # Workflow variables feed only real template parameters.
    parameters = (INFRA / "main.parameters.json").read_text()
    for name in deploy["env"]:
        if name not in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_ENV_NAME"):
            assert "${" + name in parameters, name

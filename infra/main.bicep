// The function app and everything it needs, in one resource group: `azd up`, or
// `az deployment sub create --template-file infra/main.bicep --parameters infra/main.parameters.json`
// with the `${...}` values replaced (see README, "Deploy to Azure").
//
// No secrets: every connection uses the app's user-assigned managed identity, the storage account has
// shared-key access disabled, Application Insights has local authentication disabled, and the Foundry
// account (when created here) has key authentication disabled.
targetScope = 'subscription'

// ---------------------------------------------------------------- environment

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: names the resource group and seeds the unique resource names.')
param environmentName string

@minLength(1)
@description('Region of every resource. The Flex Consumption plan must be available there.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create or update. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

// ---------------------------------------------------------------- function app

@description('Python version of the Flex Consumption runtime (the project supports 3.11 and later).')
@allowed([
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Memory of each instance of the app, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

// ---------------------------------------------------------------- model

@description('An existing model endpoint: a Foundry project endpoint (https://<account>.services.ai.azure.com/api/projects/<project>) or an Azure OpenAI endpoint (https://<account>.openai.azure.com/). Empty: this template creates a Foundry account, project and model deployment.')
param modelEndpoint string = ''

@description('Resource id of the existing endpoint\'s account (Microsoft.CognitiveServices/accounts), so the template grants the app its roles there. Empty with an existing endpoint: grant them yourself (README).')
param modelAccountResourceId string = ''

@description('Model deployment the app calls: created with this name when modelEndpoint is empty, else an existing deployment.')
param modelDeploymentName string = 'gpt-4.1-mini'

@description('Model of the created deployment (a model that supports the Responses API).')
param modelName string = 'gpt-4.1-mini'

@description('Version of the created deployment\'s model.')
param modelVersion string = '2025-04-14'

@description('SKU of the created deployment.')
param modelSkuName string = 'GlobalStandard'

@description('Capacity of the created deployment, in thousands of tokens per minute.')
@minValue(1)
param modelCapacity int = 30

@description('Region of the created Foundry account. Empty: location.')
param foundryLocation string = ''

// ---------------------------------------------------------------- the app's settings (defaults as in service/settings.py)

@description('AGENT_SESSIONS_TABLE: the table holding sessions, history and the expiry index (created here).')
param sessionsTableName string = 'agentsessions'

@description('AGENT_SESSION_TTL_SECONDS: sliding time to live of a session.')
@minValue(1)
param sessionTtlSeconds int = 86400

@description('AGENT_SWEEP_SCHEDULE: NCRONTAB schedule of the expiry sweep (the timer trigger needs this setting).')
param sweepSchedule string = '0 */5 * * * *'

@description('AGENT_DELETE_SERVICE_CONVERSATIONS: the sweep also deletes the service conversations the app created.')
param deleteServiceConversations bool = false

@description('AGENT_MODEL_TIMEOUT_SECONDS: timeout of one model call.')
@minValue(1)
param modelTimeoutSeconds int = 120

@description('AGENT_MODEL_MAX_RETRIES: SDK retries of a throttled or failed model call.')
@minValue(0)
param modelMaxRetries int = 2

@description('AGENT_GENERAL_INSTRUCTIONS: the general agent\'s prompt.')
param generalInstructions string = 'You are a helpful assistant. Be concise.'

@description('AGENT_MAX_REQUEST_BYTES: largest accepted request body.')
@minValue(1024)
param maxRequestBytes int = 1048576

@description('AGENT_MAX_MESSAGE_CHARS: longest accepted message text.')
@minValue(1)
param maxMessageChars int = 262144

@description('AGENT_MAX_OUTPUT_TOKENS: largest options.max_output_tokens a client may ask for.')
@minValue(1)
param maxOutputTokens int = 32768

@description('AGENT_MAX_MESSAGES_PER_TURN: most messages in one turn\'s request.')
@minValue(1)
param maxMessagesPerTurn int = 20

@description('AGENT_MAX_SESSION_BYTES: largest stored session, history included.')
@minValue(1024)
param maxSessionBytes int = 16777216

@description('AGENT_MAX_STATE_BYTES: largest serialized session state.')
@minValue(1024)
param maxStateBytes int = 262144

// ---------------------------------------------------------------- who the caller is (README, "Security")

@description('AGENT_AUTH_MODE: how the app tells callers apart. platform: App Service authentication with Entra ID (configured here) validates tokens and names the caller; jwt: the app validates bearer tokens itself; none: one shared owner, for a single trusted backend holding the function key. Empty: not chosen, and the app answers its user routes with 503 until it is.')
@allowed([
  ''
  'none'
  'platform'
  'jwt'
])
param authMode string = ''

@description('Client (application) id of the API\'s Entra ID app registration (platform mode; jwt mode with Entra ID).')
param authClientId string = ''

@description('AGENT_AUTH_AUDIENCE: audiences accepted tokens are issued for, comma-separated. Empty: the client id and api://<client id>.')
param authAudience string = ''

@description('AGENT_AUTH_ISSUER: issuer of accepted tokens. Empty: Entra ID v2.0 tokens of this tenant.')
param authIssuer string = ''

// ---------------------------------------------------------------- network

@description('Integrate the app with a new virtual network and reach storage through private endpoints only.')
param vnetEnabled bool = false

// ---------------------------------------------------------------- deploying user

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID), granted data access for local runs against Azure.')
param principalId string = ''

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Grant principalId the data roles a local run needs (sessions table, model). Off in CI.')
param grantDeployerAccess bool = true

// ---------------------------------------------------------------- names

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var rgName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
var storageAccountName = 'st${resourceToken}'
var foundryAccountName = 'aif-${resourceToken}'
var vnetName = 'vnet-${resourceToken}'

// ---------------------------------------------------------------- model selection

var createFoundry = empty(modelEndpoint)
// A Foundry project endpoint is called with the ai.azure.com audience (Azure AI User); an Azure OpenAI
// endpoint with the cognitiveservices audience (Cognitive Services OpenAI User).
var useProjectEndpoint = createFoundry || contains(toLower(modelEndpoint), '/api/projects/')
var endpoint = createFoundry ? foundry.outputs.projectEndpoint : modelEndpoint
var deploymentName = createFoundry ? foundry.outputs.deploymentName : modelDeploymentName

// An existing account anywhere: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.CognitiveServices/accounts/<name>
var modelAccountIdParts = split(modelAccountResourceId, '/')
var grantExistingModelRoles = createFoundry ? false : length(modelAccountIdParts) == 9
var modelAccountSubscriptionId = grantExistingModelRoles ? modelAccountIdParts[2] : subscription().subscriptionId
var modelAccountResourceGroup = grantExistingModelRoles ? modelAccountIdParts[4] : rgName

var deployerPrincipalId = grantDeployerAccess ? principalId : ''

// ---------------------------------------------------------------- authentication
// Entra ID v2.0 access tokens carry the client id as aud, v1.0 tokens the application id URI.
var authAudiences = empty(authAudience) ? [authClientId, 'api://${authClientId}'] : split(authAudience, ',')
var authIssuerUrl = empty(authIssuer) ? '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0' : authIssuer

// ---------------------------------------------------------------- the function app's own settings
// Exactly the settings agent_core reads (service/settings.py), besides those the function-app module
// sets from the identity and storage (AZURE_CLIENT_ID, SessionStorage__*). Never set here: key-based
// settings (AZURE_OPENAI_API_KEY, OPENAI_API_KEY, SessionStorage). AGENT_SWEEP_SCHEDULE is required: the
// host resolves %AGENT_SWEEP_SCHEDULE% in the timer trigger itself, so no default of the app applies.

var modelEndpointSettings = useProjectEndpoint ? {
  AZURE_AI_PROJECT_ENDPOINT: endpoint
} : {
  AZURE_OPENAI_ENDPOINT: endpoint
}

var modelSettings = {
  AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME: deploymentName
  AGENT_MODEL_TIMEOUT_SECONDS: string(modelTimeoutSeconds)
  AGENT_MODEL_MAX_RETRIES: string(modelMaxRetries)
  AGENT_GENERAL_INSTRUCTIONS: generalInstructions
}

var agentSettings = {
  AGENT_SESSIONS_TABLE: sessionsTableName
  AGENT_SESSION_TTL_SECONDS: string(sessionTtlSeconds)
  AGENT_SWEEP_SCHEDULE: sweepSchedule
  AGENT_DELETE_SERVICE_CONVERSATIONS: deleteServiceConversations ? 'true' : 'false'
  AGENT_MAX_REQUEST_BYTES: string(maxRequestBytes)
  AGENT_MAX_MESSAGE_CHARS: string(maxMessageChars)
  AGENT_MAX_OUTPUT_TOKENS: string(maxOutputTokens)
  AGENT_MAX_MESSAGES_PER_TURN: string(maxMessagesPerTurn)
  AGENT_MAX_SESSION_BYTES: string(maxSessionBytes)
  AGENT_MAX_STATE_BYTES: string(maxStateBytes)
}

// Who the caller is (README, "Security"): set only once chosen; unset, the app answers its user routes
// with 503 in Azure rather than falling back to one shared owner. jwt mode checks the tokens itself.
var authSettings = empty(authMode) ? {} : union({
  AGENT_AUTH_MODE: authMode
}, (authMode == 'jwt') ? {
  AGENT_AUTH_ISSUER: authIssuerUrl
  AGENT_AUTH_AUDIENCE: join(authAudiences, ',')
} : {})

// ---------------------------------------------------------------- resources

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

// The app's identity: host storage, deployment package, sessions table, App Insights and the model.
module appIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'app-identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: storageAccountName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    sessionsTableName: sessionsTableName
    vnetEnabled: vnetEnabled
  }
}

module network 'modules/network.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    name: vnetName
    location: location
    tags: tags
  }
}

module storagePrivateEndpoints 'modules/storage-private-endpoints.bicep' = if (vnetEnabled) {
  name: 'storage-private-endpoints'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    virtualNetworkName: vnetName
    subnetName: network.outputs.privateEndpointSubnetName
    location: location
    tags: tags
  }
}

module foundry 'modules/foundry.bicep' = if (createFoundry) {
  name: 'foundry'
  scope: rg
  params: {
    accountName: foundryAccountName
    projectName: 'proj-${resourceToken}'
    location: empty(foundryLocation) ? location : foundryLocation
    tags: tags
    deploymentName: modelDeploymentName
    modelName: modelName
    modelVersion: modelVersion
    skuName: modelSkuName
    capacity: modelCapacity
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'app-service-plan'
  scope: rg
  params: {
    name: 'plan-${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
    location: location
    tags: tags
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    planId: appServicePlan.outputs.resourceId
    identityResourceId: appIdentity.outputs.resourceId
    identityClientId: appIdentity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    subnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    appSettings: union(modelEndpointSettings, modelSettings, agentSettings, authSettings)
  }
  dependsOn: [
    rbac
  ]
}

// App Service authentication in front of the app, in platform mode only.
module appAuth 'modules/app-auth.bicep' = if (authMode == 'platform') {
  name: 'app-auth'
  scope: rg
  params: {
    functionAppName: functionApp.outputs.name
    clientId: authClientId
    allowedAudiences: authAudiences
    openIdIssuer: authIssuerUrl
  }
}

// ---------------------------------------------------------------- role assignments (least privilege)

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    sessionsTableName: sessionsTableName
    appInsightsName: monitoring.outputs.appInsightsName
    appPrincipalId: appIdentity.outputs.principalId
    userPrincipalId: deployerPrincipalId
    userPrincipalType: principalType
  }
}

module foundryRbac 'modules/model-rbac.bicep' = if (createFoundry) {
  name: 'model-rbac'
  scope: rg
  params: {
    accountName: foundryAccountName
    projectEndpoint: true
    appPrincipalId: appIdentity.outputs.principalId
    userPrincipalId: deployerPrincipalId
    userPrincipalType: principalType
  }
  dependsOn: [
    foundry
  ]
}

module existingModelRbac 'modules/model-rbac.bicep' = if (grantExistingModelRoles) {
  name: 'model-rbac-${resourceToken}'
  scope: resourceGroup(modelAccountSubscriptionId, modelAccountResourceGroup)
  params: {
    accountName: last(modelAccountIdParts)
    projectEndpoint: useProjectEndpoint
    appPrincipalId: appIdentity.outputs.principalId
    userPrincipalId: deployerPrincipalId
    userPrincipalType: principalType
  }
}

// ---------------------------------------------------------------- outputs (azd stores them in .azure/<env>/.env)

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_URI string = functionApp.outputs.uri
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = appIdentity.outputs.clientId
// For local runs against Azure (local.settings.json), with your own `az login` identity:
output AZURE_AI_PROJECT_ENDPOINT string = useProjectEndpoint ? endpoint : ''
output AZURE_OPENAI_ENDPOINT string = useProjectEndpoint ? '' : endpoint
output AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME string = deploymentName
output SESSION_STORAGE_TABLE_SERVICE_URI string = storage.outputs.tableEndpoint
output AGENT_SESSIONS_TABLE string = sessionsTableName

// The function app on the Flex Consumption plan (Linux), running as its user-assigned identity.
//
// The site is a plain resource rather than the AVM web/site module so that every app setting the app gets
// is written in this repository (tests/test_infra.py checks each one against service/settings.py); the
// AVM module adds settings of its own in some versions.
//
// On Flex Consumption the language and version live in functionAppConfig.runtime, not in the
// FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION app settings, which the plan rejects.

@description('Name of the function app.')
param name string

param location string = resourceGroup().location
param tags object = {}

@description('Resource id of the Flex Consumption (FC1) plan.')
param planId string

@description('Resource id of the app\'s user-assigned identity.')
param identityResourceId string

@description('Client id of the app\'s user-assigned identity.')
param identityClientId string

@description('Storage account for the host, the deployment package and the sessions table.')
param storageAccountName string

@description('Blob container holding the deployment package.')
param deploymentContainerName string

@description('Application Insights component the app publishes to.')
param appInsightsName string

@description('Python version of the runtime.')
param pythonVersion string

@description('Memory of each instance, in MB.')
param instanceMemoryMB int

@description('Most instances the app scales out to.')
param maximumInstanceCount int

@description('Subnet for virtual network integration (delegated to Microsoft.App/environments). Empty: none.')
param subnetId string = ''

@description('The app\'s own settings (model, expiry, limits), from main.bicep.')
param appSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// The Functions host. AzureWebJobsStorage is an identity-based connection to blob storage only: the
// host keeps its keys and the timer trigger's singleton locks (blob leases) in blobs, on Flex
// Consumption as elsewhere. Nothing here uses queues (no blob trigger, no Durable Functions), so there
// is no queue endpoint and no queue role. The host's optional diagnostic events (table storage) are
// left off, so there is no host table endpoint either.
var hostSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // The HTTP streaming extension (azurefunctions-extensions-http-fastapi) needs init indexing.
  PYTHON_ENABLE_INIT_INDEXING: '1'
}

// agent_core: DefaultAzureCredential picks the app's identity (model and storage), and the sessions
// table is reached at its endpoint with that identity (service/runtime.py, build_store).
var identitySettings = {
  AZURE_CLIENT_ID: identityClientId
  SessionStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  SessionStorage__clientId: identityClientId
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    serverFarmId: planId
    httpsOnly: true
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityResourceId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Deployments authenticate with Entra ID (azd, az, Core Tools); basic (publishing profile) credentials are off.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(appSettings, hostSettings, identitySettings)
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output uri string = 'https://${functionApp.properties.defaultHostName}'

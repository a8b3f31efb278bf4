// The app identity's data roles on storage and monitoring, each at the narrowest scope that works,
// and (optionally) the deploying user's for local runs against Azure.

@description('Storage account for the host, the deployment package and the sessions table.')
param storageAccountName string

@description('The sessions table.')
param sessionsTableName string

@description('Application Insights component.')
param appInsightsName string

@description('Principal (object) id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Principal id of the deploying user. Empty: no user roles.')
param userPrincipalId string = ''

@description('Type of userPrincipalId.')
param userPrincipalType string = 'User'

// Built-in role definitions (the same GUIDs in every tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource tableService 'tableServices' existing = {
    name: 'default'

    resource sessionsTable 'tables' existing = {
      name: sessionsTableName
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Host storage (AzureWebJobsStorage: the host's keys and the timer's blob leases; the host creates its
// containers, so the scope is the account) and the deployment package container.
resource appBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, appPrincipalId, storageBlobDataOwner)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// No Storage Queue Data Contributor: the host only needs queues for blob triggers and Durable Functions,
// and the timer trigger's locks are blob leases (Storage Blob Data Owner covers them).

// Sessions, history and the expiry index: read and write entities of the sessions table only.
resource appTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount::tableService::sessionsTable.id, appPrincipalId, storageTableDataContributor)
  scope: storageAccount::tableService::sessionsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Entra ID (Application Insights has local authentication disabled).
resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// A local run against Azure (SessionStorage__tableServiceUri with your az login) reads and writes the
// same table. Its host storage is Azurite, so the user needs no blob role.
resource userTableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(storageAccount::tableService::sessionsTable.id, userPrincipalId, storageTableDataContributor)
  scope: storageAccount::tableService::sessionsTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

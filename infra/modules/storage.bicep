// One storage account for the Functions host (blob leases, keys), the deployment package (a blob
// container) and the sessions table. Entra ID only: shared-key access is disabled, so no connection
// string or account key exists for anything to leak.

@description('Name of the storage account.')
param name string

param location string = resourceGroup().location
param tags object = {}

@description('Blob container holding the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Table holding sessions, history and the expiry index (AGENT_SESSIONS_TABLE).')
param sessionsTableName string

@description('Private endpoints only: deny public network access.')
param vnetEnabled bool = false

module account 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage-account'
  params: {
    name: name
    location: location
    tags: tags
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    dnsEndpointType: 'Standard'
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: vnetEnabled ? {
      defaultAction: 'Deny'
      bypass: 'None'
    } : {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [
        {
          name: deploymentContainerName
        }
      ]
    }
  }
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: name

  resource tableService 'tableServices' existing = {
    name: 'default'
  }
}

// Created here, so the app's identity needs no right to create tables (its table role is scoped to
// this table alone; the app's own create-if-missing call is then refused and logged, harmlessly).
resource sessionsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: storageAccount::tableService
  name: sessionsTableName
  dependsOn: [
    account
  ]
}

output name string = account.outputs.name
output resourceId string = account.outputs.resourceId
output blobEndpoint string = storageAccount.properties.primaryEndpoints.blob
output tableEndpoint string = storageAccount.properties.primaryEndpoints.table
output sessionsTableResourceId string = sessionsTable.id

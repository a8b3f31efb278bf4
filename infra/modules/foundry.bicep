// A Foundry (AIServices) account with one project and one model deployment, when no existing model
// endpoint is given. Key authentication is disabled: callers use Entra ID (model-rbac.bicep).

@description('Name of the account; also its custom subdomain (<name>.services.ai.azure.com).')
param accountName string

@description('Name of the project.')
param projectName string

param location string = resourceGroup().location
param tags object = {}

@description('Name of the model deployment (AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME).')
param deploymentName string

@description('Model to deploy (one that supports the Responses API).')
param modelName string

@description('Version of the model.')
param modelVersion string

@description('Deployment SKU.')
param skuName string = 'GlobalStandard'

@description('Capacity, in thousands of tokens per minute.')
param capacity int = 30

resource account 'Microsoft.CognitiveServices/accounts@2025-06-01' = {
  name: accountName
  location: location
  tags: tags
  kind: 'AIServices'
  sku: {
    name: 'S0'
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: accountName
    allowProjectManagement: true
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

resource project 'Microsoft.CognitiveServices/accounts/projects@2025-06-01' = {
  parent: account
  name: projectName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    displayName: projectName
    description: 'Stateful agents served from Azure Functions'
  }
}

resource deployment 'Microsoft.CognitiveServices/accounts/deployments@2025-06-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: skuName
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
  }
  // One change at a time on the account.
  dependsOn: [
    project
  ]
}

output accountName string = account.name
output accountResourceId string = account.id
output projectEndpoint string = project.properties.endpoints['AI Foundry API']
output deploymentName string = deployment.name

// The app identity's roles on the model's account (a Foundry / AIServices or Azure OpenAI account),
// deployed into that account's resource group, and (optionally) the deploying user's.

@description('Name of the Microsoft.CognitiveServices account serving the model.')
param accountName string

@description('The app calls a Foundry project endpoint (also needs Azure AI User).')
param projectEndpoint bool

@description('Principal (object) id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Principal id of the deploying user. Empty: no user roles.')
param userPrincipalId string = ''

@description('Type of userPrincipalId.')
param userPrincipalType string = 'User'

// Built-in role definitions (the same GUIDs in every tenant).
var cognitiveServicesOpenAIUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
var azureAIUser = '53ca6127-db72-4b80-b1b0-d745d6d5456d'

resource account 'Microsoft.CognitiveServices/accounts@2025-06-01' existing = {
  name: accountName
}

// Responses API calls on the account's deployments (cognitiveservices audience).
resource appOpenAIUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, cognitiveServicesOpenAIUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAIUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The same through a Foundry project endpoint (ai.azure.com audience), and the Conversations API the
// app uses for service-managed sessions.
resource appAIUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (projectEndpoint) {
  name: guid(account.id, appPrincipalId, azureAIUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', azureAIUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userOpenAIUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(account.id, userPrincipalId, cognitiveServicesOpenAIUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAIUser)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userAIUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (projectEndpoint && !empty(userPrincipalId)) {
  name: guid(account.id, userPrincipalId, azureAIUser)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', azureAIUser)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

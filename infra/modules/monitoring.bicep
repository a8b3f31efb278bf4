// Log Analytics workspace and workspace-based Application Insights. Local (instrumentation key)
// authentication is disabled: the app publishes telemetry with its identity (Monitoring Metrics Publisher,
// APPLICATIONINSIGHTS_AUTHENTICATION_STRING).

@description('Name of the Log Analytics workspace.')
param logAnalyticsName string

@description('Name of the Application Insights component.')
param appInsightsName string

param location string = resourceGroup().location
param tags object = {}

@description('Days the workspace keeps logs.')
param retentionInDays int = 30

module workspace 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  name: 'log-analytics'
  params: {
    name: logAnalyticsName
    location: location
    tags: tags
    dataRetention: retentionInDays
  }
}

module appInsights 'br/public:avm/res/insights/component:0.6.0' = {
  name: 'app-insights'
  params: {
    name: appInsightsName
    location: location
    tags: tags
    workspaceResourceId: workspace.outputs.resourceId
    disableLocalAuth: true
  }
}

output appInsightsName string = appInsights.outputs.name
output appInsightsResourceId string = appInsights.outputs.resourceId
output logAnalyticsResourceId string = workspace.outputs.resourceId

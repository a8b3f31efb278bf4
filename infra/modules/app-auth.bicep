// App Service authentication ("Easy Auth") with Entra ID in front of the function app, for
// AGENT_AUTH_MODE=platform (README, "Security").
//
// The platform checks every request's bearer token (signature, issuer, audience, lifetime) before the app
// sees it, answers 401 itself when there is none, strips any X-MS-CLIENT-PRINCIPAL* headers a client sent
// and sets its own, which the app then trusts (service/auth.py). An API only accepts tokens: no login
// flow, no token store, no client secret. The anonymous health probe and OpenAPI document stay reachable.

@description('Name of the function app.')
param functionAppName string

@description('Client (application) id of the API\'s Entra ID app registration.')
@minLength(1)
param clientId string

@description('Audiences an accepted token may be issued for.')
@minLength(1)
param allowedAudiences array

@description('Issuer of accepted tokens: Entra ID v2.0 of the tenant.')
param openIdIssuer string

@description('Paths served without authentication: the health probe and the OpenAPI document.')
param excludedPaths array = [
  '/api/health'
  '/api/openapi.json'
]

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: excludedPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: openIdIssuer
        }
        validation: {
          allowedAudiences: allowedAudiences
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

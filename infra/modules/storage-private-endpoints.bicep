// Optional (vnetEnabled): private endpoints for the storage services the app uses, blob (host storage
// and deployment package) and table (sessions), each with its private DNS zone linked to the network.
// The storage account then denies public network access.

@description('Storage account to reach privately.')
param storageAccountName string

@description('Virtual network of the app.')
param virtualNetworkName string

@description('Subnet for the private endpoints.')
param subnetName string

param location string = resourceGroup().location
param tags object = {}

@description('Storage services to reach privately (no queue: the app uses none).')
param services array = [
  'blob'
  'table'
]

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' existing = {
  name: virtualNetworkName
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

module dnsZones 'br/public:avm/res/network/private-dns-zone:0.7.1' = [
  for service in services: {
    name: 'dns-zone-${service}'
    params: {
      name: 'privatelink.${service}.${environment().suffixes.storage}'
      location: 'global'
      tags: tags
      virtualNetworkLinks: [
        {
          name: '${virtualNetworkName}-${service}'
          virtualNetworkResourceId: vnet.id
          registrationEnabled: false
          location: 'global'
          tags: tags
        }
      ]
    }
  }
]

module privateEndpoints 'br/public:avm/res/network/private-endpoint:0.11.0' = [
  for (service, i) in services: {
    name: 'private-endpoint-${service}'
    params: {
      name: 'pe-${storageAccountName}-${service}'
      location: location
      tags: tags
      subnetResourceId: '${vnet.id}/subnets/${subnetName}'
      privateLinkServiceConnections: [
        {
          name: '${service}-connection'
          properties: {
            privateLinkServiceId: storageAccount.id
            groupIds: [
              service
            ]
          }
        }
      ]
      privateDnsZoneGroup: {
        name: '${service}-dns-zone-group'
        privateDnsZoneGroupConfigs: [
          {
            name: '${service}-a-record'
            privateDnsZoneResourceId: dnsZones[i].outputs.resourceId
          }
        ]
      }
    }
  }
]

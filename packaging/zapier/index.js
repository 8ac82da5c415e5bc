'use strict';
// The REV23 Zapier app (Zapier Platform CLI, zapier-platform-core 19): instant triggers for every
// REV23 event through the daemon's REST hooks, and create / update / find customer actions.
// Authentication is a REV23 API key plus the studio's server address (rev23-webhooks runs on the
// studio's own server).

const zapier = require('zapier-platform-core');

const { DEFAULT_BASE_URL, addApiKey, friendlyErrors, call } = require('./lib/client');
const { EVENTS } = require('./lib/events');
const { triggerFor } = require('./triggers/event');
const { createCustomer, updateCustomer } = require('./creates/customer');
const { findCustomer } = require('./searches/customer');

const triggers = Object.fromEntries(EVENTS.map((event) => {
  const trigger = triggerFor(event);
  return [trigger.key, trigger];
}));

module.exports = {
  version: require('./package.json').version,
  platformVersion: zapier.version,

  authentication: {
    type: 'custom',
    fields: [
      {
        key: 'base_url',
        label: 'Server Address',
        required: true,
        default: DEFAULT_BASE_URL,
        helpText: "Your studio's rev23-webhooks address, e.g. `https://webhooks.mystudio.com`.",
      },
      {
        key: 'api_key',
        label: 'API Key',
        required: true,
        type: 'password',
        helpText: 'A REV23 API key (ca_...) for your user. Your user needs the subscribe:webhook permission for triggers.',
      },
    ],
    // `GET /v1/me`: the key's user and its effective permissions.
    test: (z, bundle) => call(z, bundle, 'GET', '/v1/me'),
    connectionLabel: (z, bundle) => {
      const me = bundle.inputData || {};
      return (me.user && (me.user.name || me.user.email || me.user.id)) || 'REV23';
    },
  },

  beforeRequest: [addApiKey],
  afterResponse: [friendlyErrors],

  triggers,
  creates: {
    [createCustomer.key]: createCustomer,
    [updateCustomer.key]: updateCustomer,
  },
  searches: {
    [findCustomer.key]: findCustomer,
  },
  searchOrCreates: {
    [findCustomer.key]: {
      key: findCustomer.key,
      display: {
        label: 'Find or Create Customer',
        description: 'Finds a customer by email, phone number or External ID, and creates one if none is found.',
      },
      search: findCustomer.key,
      create: createCustomer.key,
    },
  },
};

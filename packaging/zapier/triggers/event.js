'use strict';
// One instant (REST Hook) trigger per REV23 event type: subscribing creates a hook in the daemon
// for the Zap's URL, unsubscribing deletes it, a delivery body is the trigger's output as is, and
// the sample list comes from the daemon's polling endpoint, scoped and redacted for this user.

const { call } = require('../lib/client');
const { envelope, envelopeFields, keyOf } = require('../lib/events');

/** Most samples Zapier shows when testing a trigger. */
const SAMPLE_LIMIT = 10;

const triggerFor = (event) => ({
  key: keyOf(event.type),
  noun: event.noun,
  display: { label: event.label, description: event.description },
  operation: {
    type: 'hook',
    performSubscribe: (z, bundle) =>
      call(z, bundle, 'POST', '/v1/hooks', {
        body: { target_url: bundle.targetUrl, event: event.type, description: `Zapier: ${event.label}` },
      }),
    performUnsubscribe: async (z, bundle) => {
      await call(z, bundle, 'DELETE', `/v1/hooks/${encodeURIComponent(bundle.subscribeData.id)}`);
      return {};
    },
    // A delivery is `{"id","type","timestamp","data"}`; its `id` (the event id) dedupes.
    perform: (z, bundle) => {
      const body = bundle.cleanedRequest;
      if (!body || typeof body !== 'object' || body.type !== event.type) return [];
      return [body];
    },
    performList: async (z, bundle) => {
      const items = await call(z, bundle, 'GET', `/v1/triggers/${event.type}`, { params: { limit: SAMPLE_LIMIT } });
      return Array.isArray(items) ? items : [];
    },
    sample: envelope(event.type, event.data),
    outputFields: [...envelopeFields, ...event.fields],
  },
});

module.exports = { triggerFor };

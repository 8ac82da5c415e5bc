'use strict';
// Create and update a REV23 customer (SPEC §9). Both go through the daemon's loop protection: a
// Zap that writes back the customers a REV23 hook fed it is stopped with a clear message.

const { call } = require('../lib/client');
const customer = require('../lib/customer');

/** The customer in an answer that may wrap it (`{"customer": ...}`) or be it. */
const unwrap = (answer) => (answer && answer.customer && typeof answer.customer === 'object' ? answer.customer : answer);

const createCustomer = {
  key: 'create_customer',
  noun: 'Customer',
  display: {
    label: 'Create Customer',
    description: 'Creates a customer in REV23 (or returns the existing one with the same External ID).',
  },
  operation: {
    inputFields: customer.inputFields(['first_name', 'last_name']),
    perform: async (z, bundle) => unwrap(await call(z, bundle, 'POST', '/v1/customers', { body: customer.bodyFrom(bundle.inputData) })),
    sample: customer.sample,
    outputFields: customer.outputFields,
  },
};

const updateCustomer = {
  key: 'update_customer',
  noun: 'Customer',
  display: {
    label: 'Update Customer',
    description: "Updates a REV23 customer's details. Only the fields you map are changed.",
  },
  operation: {
    inputFields: [
      { key: 'id', label: 'Customer ID', required: true, helpText: 'The REV23 customer ID (cus_...), e.g. from Find Customer.' },
      ...customer.inputFields([]),
    ],
    perform: async (z, bundle) => {
      const { id, ...fields } = bundle.inputData;
      const answer = await call(z, bundle, 'PATCH', `/v1/customers/${encodeURIComponent(id)}`, {
        body: customer.bodyFrom(fields),
      });
      return unwrap(answer);
    },
    sample: customer.sample,
    outputFields: customer.outputFields,
  },
};

module.exports = { createCustomer, updateCustomer, unwrap };

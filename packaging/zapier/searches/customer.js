'use strict';
// Find a REV23 customer by email, phone number or external id (SPEC §9, Zapier's "find"); paired
// with Create Customer as a search-or-create.

const { call } = require('../lib/client');
const customer = require('../lib/customer');

const SEARCH_KEYS = ['email', 'phone_number', 'external_id'];

const findCustomer = {
  key: 'find_customer',
  noun: 'Customer',
  display: {
    label: 'Find Customer',
    description: 'Finds a REV23 customer by email, phone number or External ID.',
  },
  operation: {
    inputFields: [
      { key: 'email', label: 'Email' },
      { key: 'phone_number', label: 'Phone Number', helpText: 'Any format: only the digits are compared.' },
      { key: 'external_id', label: 'External ID' },
    ],
    perform: async (z, bundle) => {
      const params = {};
      for (const key of SEARCH_KEYS) {
        const value = bundle.inputData[key];
        if (value !== undefined && value !== null && String(value).trim() !== '') params[key] = String(value).trim();
      }
      if (Object.keys(params).length === 0) {
        throw new z.errors.Error('Give an email, a phone number or an External ID to search for.', 'invalid_input', 400);
      }
      const answer = await call(z, bundle, 'GET', '/v1/customers', { params });
      return Array.isArray(answer.data) ? answer.data : [];
    },
    sample: customer.sample,
    outputFields: customer.outputFields,
  },
};

module.exports = { findCustomer };

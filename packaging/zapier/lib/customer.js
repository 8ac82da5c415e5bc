'use strict';
// The customer fields of SPEC §9 as Zapier input fields, and the body built from them: empty
// inputs are left out, so an update only sends what the Zap maps (a no-op update changes nothing).

const FIELDS = [
  { key: 'first_name', label: 'First Name' },
  { key: 'last_name', label: 'Last Name' },
  { key: 'middle_name', label: 'Middle Name' },
  { key: 'nickname', label: 'Nickname' },
  { key: 'email', label: 'Email' },
  { key: 'phone_number', label: 'Phone Number' },
  { key: 'birthdate', label: 'Birthdate', helpText: 'A date, as YYYY-MM-DD.' },
  { key: 'gender', label: 'Gender' },
  { key: 'street', label: 'Street' },
  { key: 'city', label: 'City' },
  { key: 'state', label: 'State' },
  { key: 'postal_code', label: 'Postal Code' },
  { key: 'country', label: 'Country' },
  { key: 'occupation', label: 'Occupation' },
  { key: 'notes', label: 'Notes', type: 'text' },
  {
    key: 'external_id',
    label: 'External ID',
    helpText:
      "The record's ID in the other app. If a customer with this External ID already exists, REV23 returns it instead of creating a duplicate.",
  },
  {
    key: 'medical_conditions',
    label: 'Medical Conditions',
    list: true,
    helpText: 'Only visible to REV23 users allowed to read medical information.',
  },
];

const inputFields = (required) =>
  FIELDS.map((f) => ({ ...f, required: required.includes(f.key) }));

/** The request body: the mapped fields that have a value. */
const bodyFrom = (inputData) => {
  const body = {};
  for (const { key, list } of FIELDS) {
    const value = inputData[key];
    if (value === undefined || value === null || value === '') continue;
    if (list) {
      const items = (Array.isArray(value) ? value : [value]).map(String).filter((v) => v.trim() !== '');
      if (items.length > 0) body[key] = items;
    } else {
      body[key] = String(value);
    }
  }
  return body;
};

const sample = {
  id: 'cus_01JEXAMPLE00000000000000',
  first_name: 'Ann',
  last_name: 'Lee',
  email: 'ann@example.com',
  phone_number: '+1 555 0100',
  external_id: 'crm-42',
  created_at: '2026-12-04T09:20:51.123Z',
  updated_at: '2026-12-04T09:20:51.123Z',
};

const outputFields = [
  { key: 'id', label: 'Customer ID' },
  ...FIELDS.filter((f) => f.key !== 'medical_conditions').map(({ key, label }) => ({ key, label })),
  { key: 'medical_conditions_count', label: 'Medical Conditions (count)', type: 'integer' },
  { key: 'created_at', label: 'Created At', type: 'datetime' },
  { key: 'updated_at', label: 'Updated At', type: 'datetime' },
];

module.exports = { FIELDS, inputFields, bodyFrom, sample, outputFields };

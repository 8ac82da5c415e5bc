'use strict';
// REV23's event catalog (SPEC §2) as Zapier sees it: one instant trigger per type, each with a
// label, the noun Zapier shows, a sample shaped exactly like a delivery body, and output fields.

const customerFields = [
  { key: 'data__id', label: 'Customer ID' },
  { key: 'data__first_name', label: 'First Name' },
  { key: 'data__middle_name', label: 'Middle Name' },
  { key: 'data__last_name', label: 'Last Name' },
  { key: 'data__nickname', label: 'Nickname' },
  { key: 'data__email', label: 'Email' },
  { key: 'data__phone_number', label: 'Phone Number' },
  { key: 'data__birthdate', label: 'Birthdate', type: 'datetime' },
  { key: 'data__gender', label: 'Gender' },
  { key: 'data__street', label: 'Street' },
  { key: 'data__city', label: 'City' },
  { key: 'data__state', label: 'State' },
  { key: 'data__postal_code', label: 'Postal Code' },
  { key: 'data__country', label: 'Country' },
  { key: 'data__occupation', label: 'Occupation' },
  { key: 'data__notes', label: 'Notes' },
  { key: 'data__external_id', label: 'External ID' },
  // Shown instead of the conditions unless the REV23 user may read medical information.
  { key: 'data__medical_conditions_count', label: 'Medical Conditions (count)', type: 'integer' },
];

const envelopeFields = [
  { key: 'id', label: 'Event ID' },
  { key: 'type', label: 'Event Type' },
  { key: 'timestamp', label: 'Occurred At', type: 'datetime' },
];

const serviceFields = [
  { key: 'data__id', label: 'Service ID' },
  { key: 'data__customer_id', label: 'Customer ID' },
  { key: 'data__user_id', label: 'Assigned Artist (User ID)' },
  { key: 'data__name', label: 'Service Name' },
  { key: 'data__status', label: 'Status' },
];

const sessionFields = [
  { key: 'data__id', label: 'Session ID' },
  { key: 'data__service_id', label: 'Service ID' },
  { key: 'data__customer_id', label: 'Customer ID' },
  { key: 'data__user_id', label: 'Artist (User ID)' },
  { key: 'data__starts_at', label: 'Starts At', type: 'datetime' },
  { key: 'data__ends_at', label: 'Ends At', type: 'datetime' },
];

const sampleCustomer = {
  id: 'cus_01JEXAMPLE00000000000000',
  first_name: 'Ann',
  last_name: 'Lee',
  email: 'ann@example.com',
  phone_number: '+1 555 0100',
  medical_conditions_count: 1,
};

const envelope = (type, data) => ({
  id: 'evt_01JEXAMPLE00000000000000',
  type,
  timestamp: '2026-12-04T09:20:51.123Z',
  data,
});

/** Every REV23 event type, in SPEC §2 order. */
const EVENTS = [
  {
    type: 'customer.created',
    noun: 'Customer',
    label: 'New Customer',
    description: 'Triggers when a customer is added in REV23.',
    fields: customerFields,
    data: sampleCustomer,
  },
  {
    type: 'customer.updated',
    noun: 'Customer',
    label: 'Updated Customer',
    description: "Triggers when a customer's details change in REV23.",
    fields: customerFields,
    data: { ...sampleCustomer, city: 'Portland' },
  },
  {
    type: 'user.created',
    noun: 'User',
    label: 'New User',
    description: 'Triggers when a staff user is added to the studio.',
    fields: [
      { key: 'data__id', label: 'User ID' },
      { key: 'data__name', label: 'Name' },
      { key: 'data__email', label: 'Email' },
    ],
    data: { id: 'usr_01JEXAMPLE00000000000000', name: 'Sam Artist', email: 'sam@example.com' },
  },
  {
    type: 'service.created',
    noun: 'Service',
    label: 'New Service',
    description: 'Triggers when a service (a tattoo or piercing job) is created.',
    fields: serviceFields,
    data: { id: 'svc_1', customer_id: 'cus_1', user_id: 'usr_1', name: 'Forearm piece', status: 'open' },
  },
  {
    type: 'service.completed',
    noun: 'Service',
    label: 'Service Completed',
    description: 'Triggers when a service is marked complete.',
    fields: serviceFields,
    data: { id: 'svc_1', customer_id: 'cus_1', user_id: 'usr_1', name: 'Forearm piece', status: 'completed' },
  },
  {
    type: 'service.user_assigned',
    noun: 'Service',
    label: 'Artist Assigned to Service',
    description: 'Triggers when an artist is assigned to a service.',
    fields: serviceFields,
    data: { id: 'svc_1', customer_id: 'cus_1', user_id: 'usr_2', name: 'Forearm piece', status: 'open' },
  },
  {
    type: 'service_session.created',
    noun: 'Session',
    label: 'New Session',
    description: 'Triggers when a session is booked for a service.',
    fields: sessionFields,
    data: { id: 'ses_1', service_id: 'svc_1', customer_id: 'cus_1', user_id: 'usr_1', starts_at: '2026-12-10T15:00:00.000Z' },
  },
  {
    type: 'service_session.started',
    noun: 'Session',
    label: 'Session Started',
    description: 'Triggers when a session starts.',
    fields: sessionFields,
    data: { id: 'ses_1', service_id: 'svc_1', customer_id: 'cus_1', user_id: 'usr_1', starts_at: '2026-12-10T15:02:00.000Z' },
  },
  {
    type: 'service_session.ended',
    noun: 'Session',
    label: 'Session Ended',
    description: 'Triggers when a session ends.',
    fields: sessionFields,
    data: { id: 'ses_1', service_id: 'svc_1', customer_id: 'cus_1', user_id: 'usr_1', ends_at: '2026-12-10T18:30:00.000Z' },
  },
  {
    type: 'release_form.generated',
    noun: 'Release Form',
    label: 'Release Form Signed',
    description: 'Triggers when a signed release form (PDF) is generated for a customer.',
    fields: [
      { key: 'data__id', label: 'Release Form ID' },
      { key: 'data__customer_id', label: 'Customer ID' },
      { key: 'data__service_id', label: 'Service ID' },
      // A signed link, valid for 24 hours (files.url_ttl_ms).
      { key: 'data__pdf__url', label: 'Release Form PDF', type: 'file' },
      { key: 'data__pdf__sha256', label: 'PDF SHA-256' },
      { key: 'data__pdf__size_bytes', label: 'PDF Size (bytes)', type: 'integer' },
    ],
    data: {
      id: 'rf_1',
      customer_id: 'cus_1',
      service_id: 'svc_1',
      pdf: {
        sha256: 'a'.repeat(64),
        size_bytes: 48213,
        content_type: 'application/pdf',
        url: `http://127.0.0.1:8023/v1/files/${'a'.repeat(64)}?expires=1796379616&sig=example`,
      },
    },
  },
  {
    type: 'lead.created',
    noun: 'Lead',
    label: 'New Lead',
    description: 'Triggers when a new lead (an enquiry) comes in.',
    fields: [
      { key: 'data__id', label: 'Lead ID' },
      { key: 'data__name', label: 'Name' },
      { key: 'data__email', label: 'Email' },
      { key: 'data__message', label: 'Message' },
    ],
    data: { id: 'lead_1', name: 'Jo', email: 'jo@example.com', message: 'Hi! Do you do walk-ins?' },
  },
];

/** `customer.created` → `customer_created` (Zapier keys may not contain dots). */
const keyOf = (type) => type.replace(/\./g, '_');

module.exports = { EVENTS, envelope, envelopeFields, keyOf };

'use strict';
// The REV23 Zapier app against the real daemon (started by the test on 127.0.0.1): auth, the
// REST hook lifecycle with a real delivery fed to `perform`, real samples from `performList`,
// create / update / find customer, friendly errors, and the app schema validated offline.

process.env.NODE_ENV = 'test';
const assert = require('assert');
const zapier = require('zapier-platform-core');
const schema = require('zapier-platform-core/src/tools/schema');

const App = require('../index');
const { EVENTS, keyOf } = require('../lib/events');
const { describeFailure } = require('../lib/client');
const { startDaemon, api, userWithKey, startReceiver, sleep } = require('./daemon');

const appTester = zapier.createAppTester(App);

describe('REV23 Zapier app', function () {
  let daemon;
  let auth;

  before(async function () {
    daemon = await startDaemon();
    auth = { base_url: daemon.baseUrl, api_key: daemon.ownerKey };
  });
  after(async function () {
    if (daemon) await daemon.stop();
  });

  const postEvents = async (events) => {
    const r = await api(daemon, 'POST', '/v1/events', daemon.ownerKey, events);
    assert.strictEqual(r.status, 201, JSON.stringify(r.body));
    return r.body.data.map((e) => e.id);
  };

  describe('definition', function () {
    it('validates against the Zapier schema offline', function () {
      assert.deepStrictEqual(schema.validateApp(schema.prepareApp(App)), []);
    });

    it('has one instant trigger per REV23 event type', function () {
      const types = EVENTS.map((e) => e.type).sort();
      assert.deepStrictEqual(types, [
        'customer.created', 'customer.updated', 'lead.created', 'release_form.generated',
        'service.completed', 'service.created', 'service.user_assigned',
        'service_session.created', 'service_session.ended', 'service_session.started', 'user.created',
      ]);
      for (const type of types) {
        const trigger = App.triggers[keyOf(type)];
        assert.ok(trigger, type);
        assert.strictEqual(trigger.operation.type, 'hook');
        for (const fn of ['performSubscribe', 'performUnsubscribe', 'perform', 'performList']) {
          assert.strictEqual(typeof trigger.operation[fn], 'function', `${type}.${fn}`);
        }
        assert.strictEqual(trigger.operation.sample.type, type);
      }
      const pdf = App.triggers.release_form_generated.operation.outputFields.find((f) => f.key === 'data__pdf__url');
      assert.strictEqual(pdf.type, 'file');
    });

    it('pairs find customer with create customer', function () {
      const pair = App.searchOrCreates.find_customer;
      assert.strictEqual(pair.search, 'find_customer');
      assert.strictEqual(pair.create, 'create_customer');
    });
  });

  describe('authentication', function () {
    it('accepts a good key and labels the connection with the user', async function () {
      const me = await appTester(App.authentication.test, { authData: auth });
      assert.strictEqual(typeof me.user.id, 'string');
      assert.ok(me.permissions.includes('subscribe:webhook'));
      const label = App.authentication.connectionLabel(null, { inputData: me });
      assert.strictEqual(label, me.user.name);
    });

    it('refuses a bad key with a message a studio owner understands', async function () {
      await assert.rejects(
        appTester(App.authentication.test, { authData: { ...auth, api_key: 'ca_not_a_real_key' } }),
        /did not accept this API key/,
      );
    });
  });

  describe('instant trigger (REST hook)', function () {
    it('subscribes, receives a real delivery, lists real samples, unsubscribes', async function () {
      const receiver = await startReceiver();
      try {
        const op = App.triggers.customer_created.operation;
        const subscription = await appTester(op.performSubscribe, { authData: auth, targetUrl: receiver.url });
        assert.match(subscription.id, /^hook_/);
        assert.deepStrictEqual(subscription.events, ['customer.created']);

        const [eventId] = await postEvents({ type: 'customer.created', data: { id: 'cus_zap_1', first_name: 'Ann', medical_conditions: ['x'] } });
        const got = await receiver.waitFor(1);
        assert.strictEqual(got.length, 1);
        const delivered = JSON.parse(got[0].body);
        assert.strictEqual(got[0].headers['webhook-id'], eventId);

        const results = await appTester(op.perform, { authData: auth, cleanedRequest: delivered });
        assert.strictEqual(results.length, 1);
        assert.strictEqual(results[0].id, eventId);
        assert.strictEqual(results[0].data.first_name, 'Ann');
        // A delivery of another type is not this trigger's.
        const other = await appTester(op.perform, { authData: auth, cleanedRequest: { ...delivered, type: 'lead.created' } });
        assert.deepStrictEqual(other, []);

        await postEvents([
          { type: 'customer.created', data: { id: 'cus_zap_2' } },
          { type: 'customer.created', data: { id: 'cus_zap_3' } },
        ]);
        const samples = await appTester(op.performList, { authData: auth, meta: { isLoadingSample: true } });
        assert.deepStrictEqual(samples.map((s) => s.data.id), ['cus_zap_3', 'cus_zap_2', 'cus_zap_1'], 'newest first');
        assert.strictEqual(new Set(samples.map((s) => s.id)).size, samples.length, 'unique ids');
        assert.strictEqual(samples[2].id, eventId);

        await receiver.waitFor(3);
        await appTester(op.performUnsubscribe, { authData: auth, subscribeData: subscription });
        const gone = await api(daemon, 'GET', `/v1/hooks/${subscription.id}`, daemon.ownerKey);
        assert.strictEqual(gone.status, 404);
        const before = receiver.received.length;
        await postEvents({ type: 'customer.created', data: { id: 'cus_zap_4' } });
        await sleep(1000);
        assert.strictEqual(receiver.received.length, before, 'no delivery after unsubscribe');
      } finally {
        await receiver.close();
      }
    });

    it('samples are scoped and redacted for the connected user', async function () {
      const zap = await userWithKey(daemon, 'Zap user', ['subscribe:webhook', 'read:customer']);
      await postEvents({ type: 'customer.created', data: { id: 'cus_med', medical_conditions: ['asthma', 'epilepsy'] } });
      const samples = await appTester(App.triggers.customer_created.operation.performList, {
        authData: { ...auth, api_key: zap.key },
      });
      const item = samples.find((s) => s.data.id === 'cus_med');
      assert.ok(item);
      assert.strictEqual(item.data.medical_conditions, undefined);
      assert.strictEqual(item.data.medical_conditions_count, 2);
    });

    it('a user without subscribe:webhook gets a clear refusal', async function () {
      const reader = await userWithKey(daemon, 'Reader', ['read:customer']);
      await assert.rejects(
        appTester(App.triggers.customer_created.operation.performSubscribe, {
          authData: { ...auth, api_key: reader.key },
          targetUrl: 'http://127.0.0.1:9/hooks/standard/1/x/',
        }),
        /not allowed to do this/,
      );
    });
  });

  describe('customers', function () {
    it('creates, finds (email / phone / external id), and updates a customer', async function () {
      const created = await appTester(App.creates.create_customer.operation.perform, {
        authData: auth,
        inputData: { first_name: 'Ada', last_name: 'Lovelace', email: 'ada@example.com', phone_number: '+1 (555) 010-9999', external_id: 'crm-7', city: '' },
      });
      assert.match(created.id, /^cus_/);
      assert.strictEqual(created.first_name, 'Ada');
      assert.strictEqual(created.city, undefined, 'empty inputs are not sent');

      const search = App.searches.find_customer.operation.perform;
      for (const inputData of [{ email: 'ADA@example.com' }, { phone_number: '15550109999' }, { external_id: 'crm-7' }]) {
        const found = await appTester(search, { authData: auth, inputData });
        assert.strictEqual(found.length, 1, JSON.stringify(inputData));
        assert.strictEqual(found[0].id, created.id);
      }
      const none = await appTester(search, { authData: auth, inputData: { email: 'nobody@example.com' } });
      assert.deepStrictEqual(none, []);
      await assert.rejects(appTester(search, { authData: auth, inputData: {} }), /Give an email/);

      // The same external id again returns the existing customer, not a duplicate.
      const again = await appTester(App.creates.create_customer.operation.perform, {
        authData: auth,
        inputData: { first_name: 'Ada', last_name: 'L.', external_id: 'crm-7' },
      });
      assert.strictEqual(again.id, created.id);

      const updated = await appTester(App.creates.update_customer.operation.perform, {
        authData: auth,
        inputData: { id: created.id, city: 'London' },
      });
      assert.strictEqual(updated.id, created.id);
      assert.strictEqual(updated.city, 'London');
      assert.strictEqual(updated.email, 'ada@example.com', 'unmapped fields are kept');
    });

    it('explains refusals: missing permission (403) and invalid data (422)', async function () {
      const reader = await userWithKey(daemon, 'Read only', ['read:customer']);
      await assert.rejects(
        appTester(App.creates.create_customer.operation.perform, {
          authData: { ...auth, api_key: reader.key },
          inputData: { first_name: 'No', last_name: 'Access' },
        }),
        /not allowed to do this/,
      );
      await assert.rejects(
        appTester(App.creates.create_customer.operation.perform, {
          authData: auth,
          inputData: { first_name: 'Bad', last_name: 'Email', email: 'not-an-email' },
        }),
        /could not accept this data/,
      );
    });
  });

  describe('friendly errors', function () {
    it('maps each REV23 error to a message and a Zapier error class', function () {
      assert.strictEqual(describeFailure(200, {}), null);
      assert.strictEqual(describeFailure(401, {}).kind, 'auth');
      assert.match(describeFailure(403, { message: 'needs write:customer' }).message, /needs write:customer/);
      const loop = describeFailure(409, { code: 'loop_detected', message: 'echo of hook_1' });
      assert.strictEqual(loop.kind, 'halt');
      assert.match(loop.message, /sync loop/);
      assert.strictEqual(describeFailure(409, { code: 'conflict' }).kind, 'error');
      assert.match(describeFailure(422, { message: 'email is not an email address' }).message, /email is not an email address/);
      assert.strictEqual(describeFailure(429, {}).kind, 'throttle');
      assert.strictEqual(describeFailure(503, {}).kind, 'throttle');
      assert.match(describeFailure(500, {}).message, /HTTP 500/);
    });
  });
});

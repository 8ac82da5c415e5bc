'use strict';
// How the app talks to a rev23-webhooks daemon: the studio's own server address (on-premise, so
// it is part of the connection), the API key header on every request, and REV23's error bodies
// turned into messages a studio owner can act on.

const DEFAULT_BASE_URL = 'http://127.0.0.1:8023';

/** The daemon's base URL for this connection, without a trailing slash. */
const baseUrl = (bundle) =>
  String((bundle.authData && bundle.authData.base_url) || DEFAULT_BASE_URL).replace(/\/+$/, '');

/** `beforeRequest`: every call carries the connection's API key (REV23's `X-Api-Key`). */
const addApiKey = (request, z, bundle) => {
  if (bundle.authData && bundle.authData.api_key) {
    request.headers = { ...(request.headers || {}), 'X-Api-Key': bundle.authData.api_key };
  }
  return request;
};

/** The `{"error":{"code","message"}}` of a daemon answer, if it has one. */
const errorOf = (response) => {
  try {
    const body = response.data !== undefined ? response.data : JSON.parse(response.content);
    if (body && body.error && typeof body.error === 'object') {
      return { code: String(body.error.code || ''), message: String(body.error.message || '') };
    }
  } catch (_) {
    // Not JSON (a proxy's HTML page, say): fall through to the status alone.
  }
  return { code: '', message: '' };
};

const retryAfterSeconds = (response) => {
  const value = response.headers && response.headers.get ? response.headers.get('retry-after') : undefined;
  const seconds = parseInt(value, 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : 60;
};

/**
 * The message (and Zapier error class) for a failed daemon answer, or null when it succeeded.
 * Kept separate from Zapier's objects so it can be tested on its own.
 */
const describeFailure = (status, error) => {
  const detail = error.message ? ` (REV23 said: ${error.message})` : '';
  if (status < 400) return null;
  if (status === 401) {
    return {
      kind: 'auth',
      message:
        'REV23 did not accept this API key. Create a new API key for your REV23 user and reconnect your REV23 account in Zapier.' +
        detail,
    };
  }
  if (status === 403) {
    return {
      kind: 'error',
      code: 'forbidden',
      message:
        'Your REV23 user is not allowed to do this. Ask the studio owner to give your user the needed permission' +
        ` (for example subscribe:webhook, read:customer or write:customer).${detail}`,
    };
  }
  if (status === 404) {
    return { kind: 'error', code: 'not_found', message: `REV23 could not find that record.${detail}` };
  }
  if (status === 409 && error.code === 'loop_detected') {
    return {
      kind: 'halt',
      message:
        'REV23 stopped this step because it looks like a sync loop: the same customer keeps coming back from this Zap. ' +
        'The REV23 hook that feeds this Zap was paused to protect your customer list; the studio owner can review it under Loops.' +
        detail,
    };
  }
  if (status === 409) {
    return { kind: 'error', code: 'conflict', message: `REV23 refused this because it conflicts with existing data.${detail}` };
  }
  if (status === 413) {
    return { kind: 'error', code: 'payload_too_large', message: `This is too large for REV23 to accept.${detail}` };
  }
  if (status === 422) {
    return { kind: 'error', code: 'validation_failed', message: `REV23 could not accept this data: please check the fields.${detail}` };
  }
  if (status === 429) {
    return { kind: 'throttle', message: 'REV23 is receiving too many requests from this API key; Zapier will try again shortly.' };
  }
  if (status === 503) {
    return { kind: 'throttle', message: 'The REV23 server is busy or starting up; Zapier will try again shortly.' };
  }
  return { kind: 'error', code: `http_${status}`, message: `The REV23 server answered with an error (HTTP ${status}).${detail}` };
};

/** `afterResponse`: throw the friendly error for a failed answer; pass successes through. */
const friendlyErrors = (response, z) => {
  const failure = describeFailure(response.status, response.status >= 400 ? errorOf(response) : {});
  if (!failure) return response;
  switch (failure.kind) {
    case 'auth':
      throw new z.errors.Error(failure.message, 'AuthenticationError', response.status);
    case 'halt':
      throw new z.errors.HaltedError(failure.message);
    case 'throttle':
      throw new z.errors.ThrottledError(failure.message, retryAfterSeconds(response));
    default:
      throw new z.errors.Error(failure.message, failure.code, response.status);
  }
};

/** A JSON request to the daemon; resolves to the parsed body (or `{}` for an empty one). */
const call = async (z, bundle, method, path, { params, body, headers } = {}) => {
  const response = await z.request({
    url: `${baseUrl(bundle)}${path}`,
    method,
    params,
    body,
    headers: { Accept: 'application/json', ...(headers || {}) },
    // Our afterResponse explains a 429 in REV23's words (it still raises Zapier's ThrottledError).
    throwForThrottlingEarly: false,
  });
  if (!response.content) return {};
  return response.data !== undefined ? response.data : JSON.parse(response.content);
};

module.exports = { DEFAULT_BASE_URL, baseUrl, addApiKey, friendlyErrors, describeFailure, errorOf, call };

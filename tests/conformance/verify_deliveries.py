#!/usr/bin/env python3
"""Independent verification of deliveries captured from a real rev23-webhooks daemon.

Usage: python3 tests/conformance/verify_deliveries.py CAPTURE_DIR

CAPTURE_DIR holds one JSON file per delivery (written by tests/delivery.rs), each:
    {"name": str, "body_b64": str (the raw body bytes as received),
     "headers": {lower-case name: value}, "secret": "whsec_...",
     "previous_secret": "whsec_..." | null (set when captured during a rotation overlap),
     "public_key": "whpk_..."}

Every capture is checked with code that shares nothing with the daemon:
  * v1: `standardwebhooks.Webhook(secret).verify(body, headers)` (the reference Python library,
    which also enforces its 5-minute timestamp tolerance), once per secret: a rotation capture must
    verify with the new secret and, separately, with the previous one. The header must carry
    exactly one `v1,` entry per secret.
  * v1a: exactly one `v1a,` entry, an ed25519 signature checked with `cryptography` over
    `{webhook-id}.{webhook-timestamp}.{body}` under the `whpk_` public key.
  * negative cases: a tampered body, a shifted timestamp and an unrelated secret must fail.

Exits 0 and prints `verified N deliveries: v1 ok, v1a ok` when all pass; otherwise prints each
failure and exits 1 (2 for usage errors or unreadable captures).
"""

import base64
import json
import os
import secrets as random_secrets
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook, WebhookVerificationError

BODY_KEYS = ["id", "type", "timestamp", "data"]


def v1_verifies(secret, body, headers):
    """True if standardwebhooks accepts the delivery with this secret."""
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def v1a_verifies(public_key, msg_id, timestamp, body, signature_b64):
    try:
        public_key.verify(
            base64.b64decode(signature_b64, validate=True),
            f"{msg_id}.{timestamp}.".encode() + body,
        )
        return True
    except (InvalidSignature, ValueError):
        return False


def tampered(body):
    """The body with one byte changed (still the same length)."""
    changed = bytearray(body)
    changed[len(changed) // 2] ^= 0x01
    return bytes(changed)


def check_capture(capture):
    """Returns a list of failure messages for one capture (empty = verified)."""
    errors = []
    name = capture.get("name", "?")
    body = base64.b64decode(capture["body_b64"])
    headers = {k.lower(): v for k, v in capture["headers"].items()}
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not (msg_id and timestamp and signature):
        return [f"{name}: missing webhook-id / webhook-timestamp / webhook-signature"]
    if not timestamp.isdigit():
        errors.append(f"{name}: webhook-timestamp {timestamp!r} is not integer seconds")

    secrets = [capture["secret"]]
    if capture.get("previous_secret"):
        secrets.append(capture["previous_secret"])
    entries = signature.split(" ")
    v1_entries = [e for e in entries if e.startswith("v1,")]
    v1a_entries = [e[len("v1a,"):] for e in entries if e.startswith("v1a,")]
    if len(v1_entries) != len(secrets):
        errors.append(
            f"{name}: {len(v1_entries)} v1 entries, expected {len(secrets)} "
            f"(one per secret): {signature!r}"
        )
    if len(v1a_entries) != 1:
        errors.append(f"{name}: {len(v1a_entries)} v1a entries, expected 1: {signature!r}")

    # v1, with each secret on its own, through the reference library.
    for index, secret in enumerate(secrets):
        label = "current secret" if index == 0 else "previous secret"
        try:
            parsed = Webhook(secret).verify(body, headers)
        except WebhookVerificationError as e:
            errors.append(f"{name}: v1 with the {label} failed: {e}")
            continue
        if not isinstance(parsed, dict) or list(parsed.keys()) != BODY_KEYS:
            errors.append(f"{name}: body keys {list(parsed)!r}, expected {BODY_KEYS!r}")
        elif parsed["id"] != msg_id:
            errors.append(f"{name}: body id {parsed['id']!r} != webhook-id {msg_id!r}")
        if v1_verifies(secret, tampered(body), headers):
            errors.append(f"{name}: v1 with the {label} accepted a tampered body")
        shifted = dict(headers, **{"webhook-timestamp": str(int(timestamp) + 1)})
        if v1_verifies(secret, body, shifted):
            errors.append(f"{name}: v1 with the {label} accepted a shifted timestamp")
    unrelated = "whsec_" + base64.b64encode(random_secrets.token_bytes(32)).decode()
    if v1_verifies(unrelated, body, headers):
        errors.append(f"{name}: v1 accepted an unrelated secret")

    # v1a, with cryptography's ed25519.
    public_key_text = capture["public_key"]
    if not public_key_text.startswith("whpk_"):
        errors.append(f"{name}: public key does not start with whpk_")
        return errors
    try:
        public_key = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(public_key_text[len("whpk_"):], validate=True)
        )
    except ValueError as e:
        return errors + [f"{name}: unreadable public key: {e}"]
    for sig in v1a_entries:
        if not v1a_verifies(public_key, msg_id, timestamp, body, sig):
            errors.append(f"{name}: v1a signature does not verify")
        if v1a_verifies(public_key, msg_id, timestamp, tampered(body), sig):
            errors.append(f"{name}: v1a accepted a tampered body")
        if v1a_verifies(public_key, msg_id, str(int(timestamp) + 1), body, sig):
            errors.append(f"{name}: v1a accepted a shifted timestamp")
    return errors


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} CAPTURE_DIR", file=sys.stderr)
        return 2
    directory = argv[1]
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except OSError as e:
        print(f"verify_deliveries: cannot list {directory}: {e}", file=sys.stderr)
        return 2
    if not names:
        print(f"verify_deliveries: no *.json captures in {directory}", file=sys.stderr)
        return 2
    failures = []
    rotations = 0
    for file_name in names:
        path = os.path.join(directory, file_name)
        try:
            with open(path, encoding="utf-8") as f:
                capture = json.load(f)
            capture.setdefault("name", file_name)
            if capture.get("previous_secret"):
                rotations += 1
            failures.extend(check_capture(capture))
        except (OSError, ValueError, KeyError, TypeError) as e:
            failures.append(f"{file_name}: unreadable capture: {e!r}")
    if failures:
        for failure in failures:
            print(f"FAIL {failure}", file=sys.stderr)
        print(
            f"verify_deliveries: {len(failures)} failure(s) in {len(names)} deliveries",
            file=sys.stderr,
        )
        return 1
    print(
        f"verified {len(names)} deliveries: v1 ok, v1a ok "
        f"({rotations} during a secret rotation; tampered body, shifted timestamp and "
        f"unrelated secret rejected)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

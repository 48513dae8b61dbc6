"""Verifies deliveries with the Standard Webhooks reference library.

Reads JSON from stdin: [{"secret": "whsec_...", "headers": {...}, "body": "..."}]
Prints JSON: [{"ok": true, "type": "..."} | {"ok": false, "error": "..."}]
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

results = []
for case in json.load(sys.stdin):
    try:
        payload = Webhook(case["secret"]).verify(case["body"], case["headers"])
        results.append({"ok": True, "type": payload.get("type")})
    except WebhookVerificationError as error:
        results.append({"ok": False, "error": str(error)})
print(json.dumps(results))

"""Schemathesis hooks for the TaskHarbor contract run (tests/api/contract.rs).

API.md answers 422 validation_failed both for values that break a bound (which
the OpenAPI document states, so a schema-valid request must never get one)
and for values that break a rule about the board's current state (an unknown
lane, a taken key, a past expiry, an unreachable webhook host), which no
schema can state. Schemathesis' own positive_data_acceptance check cannot tell
them apart, so the run lets 422 through there and this check fails every
schema-valid request whose 422 names anything but a state rule.
"""

import re

import schemathesis

# Messages of rules that depend on stored data, the clock or the network.
STATE_RULES = [
    r"^no such (lane|board)",
    r"^no item -?\d+ on this board",
    r"^item -?\d+ already waits for this item",
    r"^an item cannot (block itself|be its own ancestor)",
    r"^the board has no [a-z_ ]+ lane",
    r"^new items go to a backlog or ready lane",
    r"^a subtask needs a parent item",
    r"^already used by another (board|lane)",
    r"^holds \d+ item",
    r"^the board already has the most lanes",
    r"^worker .* exists and is a",
    r"^must be in the future",
    r"^was already used for a different request",
    # Sync links: the server's own tokens, other boards' links and the
    # provider's answer are state; a repository's number of parts depends
    # on the provider named beside it, and `.`/`..` parts are refused (the
    # schema states the characters and the 2..20 parts that both allow).
    r"^no token given and the server has none",
    r"^already linked to board",
    r"^the provider (does not know|refused)",
    r"^must be (owner/name|group/project)",
    # Flow stats: the schema's pattern states the YYYY-MM-DD shape; a real
    # calendar day and a range of at most 366 days, from before to, cannot be.
    r"^must be a date written YYYY-MM-DD",
    r"^must not be after to",
    r"^the range may cover at most",
]
# A webhook URL or a sync api_url must resolve to a reachable address: any refusal of it.
STATE_FIELDS = {"url", "api_url"}


@schemathesis.check
def schema_valid_input_is_refused_only_for_state(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        details = response.json()["error"]["details"]
    except Exception:  # noqa: BLE001 - a non-JSON 422 is itself the finding
        raise AssertionError(f"422 without the API.md error shape: {response.text[:200]}")
    refused = {
        field: message
        for field, message in details.items()
        if field not in STATE_FIELDS and not any(re.search(rule, str(message)) for rule in STATE_RULES)
    }
    if refused:
        raise AssertionError(f"a schema-valid request was refused for its shape: {refused}")
    return None

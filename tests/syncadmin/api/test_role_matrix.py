"""Every state-changing API call × every role, as the console's matrix (tests/syncadmin/test_role_matrix.py):
forbidden answers 403 and changes nothing (no audit entry, no idempotency record); allowed is not 403.

The roles of docs/console.md, "Who may do what": Viewers only read; Support retry, discard, annotate dead
letters, pause and resume processing and run/resync reconciliation; Terminal admins also edit payloads,
restore and manage terminals.
"""

import pytest

from syncadmin.models import IdempotencyRecord

# ``objects``: the console matrix's fixture (the same dead letter, discarded message, job, terminal), used by name.
from tests.syncadmin.test_role_matrix import ADMINS, ROLES, SUPPORT_UP, objects, snapshot  # noqa: F401

pytestmark = pytest.mark.django_db
EVERYONE = set(ROLES)

# (name, path, JSON body, roles allowed)
ACTIONS = [
    ("retry", "/messages/{dead}/retry", {"reason": "r"}, SUPPORT_UP),
    ("discard", "/messages/{dead}/discard", {"reason": "r"}, SUPPORT_UP),
    ("edit & retry", "/messages/{dead}/edit", {"payload": '{"a": 1}', "reason": "fix"}, ADMINS),
    ("restore", "/messages/{disc}/restore", {"reason": "r"}, ADMINS),
    ("bulk retry", "/messages/actions", {"action": "retry", "ids": ["{dead}"]}, SUPPORT_UP),
    ("bulk discard", "/messages/actions", {"action": "discard", "ids": ["{dead}"], "reason": "r"}, SUPPORT_UP),
    ("bulk restore", "/messages/actions", {"action": "restore", "ids": ["{disc}"]}, ADMINS),
    ("bulk retry dry run", "/messages/actions", {"action": "retry", "ids": ["{dead}"], "dry_run": True}, SUPPORT_UP),
    ("cancel bulk job", "/bulk-jobs/{job}/cancel", {}, SUPPORT_UP),
    ("pause bulk job", "/bulk-jobs/{job}/pause", {"reason": "r"}, SUPPORT_UP),
    ("resume bulk job", "/bulk-jobs/{paused}/resume", {"reason": "r"}, SUPPORT_UP),
    ("throttled bulk retry", "/messages/actions", {"action": "retry", "ids": ["{dead}"], "rate": 5}, SUPPORT_UP),
    ("dead-letter note", "/dead-letters/groups/note", {"grouping": "reason", "key": "k", "note": "n"}, SUPPORT_UP),
    ("group retry", "/dead-letters/groups/actions", {"by": "terminal", "key": "ROLE-T1", "action": "retry"},
     SUPPORT_UP),
    ("create terminal", "/terminals", {"code": "ROLE-NEW"}, ADMINS),
    ("bulk create terminals", "/terminals/bulk", {"terminals": [{"code": "ROLE-B1"}]}, ADMINS),
    ("disable terminal", "/terminals/ROLE-T1/disable", {"reason": "r"}, ADMINS),
    ("enable terminal", "/terminals/ROLE-T1/enable", {"reason": "r"}, ADMINS),
    ("rotate key", "/terminals/ROLE-T1/rotate-key", {"reason": "r"}, ADMINS),
    ("run reconciliation", "/reconciliation/runs", {}, SUPPORT_UP),
    ("request resync", "/reconciliation/resync", {"terminal": "ROLE-T1", "entity_type": "product"}, SUPPORT_UP),
    ("pause", "/pauses", {"scope": "message_type", "value": "price.upsert", "reason": "r"}, SUPPORT_UP),
    ("resume", "/pauses/{pause}/resume", {"reason": "fixed"}, SUPPORT_UP),
]  # fmt: skip
READS = [
    "/terminals", "/terminals/ROLE-T1", "/messages", "/messages/{dead}", "/dead-letters/groups", "/bulk-jobs",
    "/bulk-jobs/{job}", "/reconciliation/runs", "/reconciliation/matrix", "/reconciliation/discrepancies", "/health",
    "/pauses",
]  # fmt: skip


def fill(value, objects):  # noqa: F811
    ids = {"dead": objects["dead"].pk, "disc": objects["disc"].pk, "job": objects["job"].pk}
    ids["paused"] = objects["paused"].pk
    ids["pause"] = objects["pause"].pk
    if isinstance(value, list):
        return [fill(v, objects) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, objects) for k, v in value.items()}
    if isinstance(value, str):
        for key, pk in ids.items():
            if value == "{" + key + "}":
                return pk
            value = value.replace("{" + key + "}", str(pk))
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,path,body,allowed", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_every_api_action_for_every_role(api_as, objects, role, name, path, body, allowed):  # noqa: F811
    api = api_as(role)
    before = snapshot(objects)
    response = api.post(fill(path, objects), fill(body, objects), headers={"Idempotency-Key": "matrix"})
    if role in allowed:
        assert response.status_code != 403, f"{role} should be allowed to {name}: {response.content[:300]}"
        assert response.status_code < 400, response.content[:300]
    else:
        assert response.status_code == 403, f"{role} must not {name}: got {response.status_code}"
        assert snapshot(objects) == before, f"a refused {name} changed something"
        assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_everything_and_a_user_without_one_reads_nothing(api_as, objects, role):  # noqa: F811
    api, nobody = api_as(role), api_as(None)
    for path in READS:
        assert api.get(fill(path, objects)).status_code == 200, path
        assert nobody.get(fill(path, objects)).status_code == 403, path

"""Long-running-operation answer patterns (arm-client.md section 2), selectable per action.

By default an action answers like the real ASR service: 202, empty body, Location
(`.../operationresults/{job}`), Azure-AsyncOperation (`.../replicationOperationStatus/{job}`),
Retry-After and x-ms-request-id (pattern `ao+location`).  A fault rule `{"action": "lro",
"pattern": NAME}` makes the next matching action follow another pattern; the operation remembers
it and the status / result URLs answer accordingly.  Each pattern is listed with the scenario
numbers of arm-client.md section 2 it reproduces.  PUT/PATCH-only scenarios (6, 16-24) have no ASR
action to attach to.
"""

PATTERNS = {
    "ao+location": "1,2,3: 202 {AO, LOC}; AO InProgress..Succeeded; LOC 202 while running, 200 + resource",
    "location-empty-final": "4: as default, but the final LOC GET answers 200 with an empty body",
    "ao-resource-location": "5: 202 {AO only}; final status carries resourceLocation = the resource URL",
    "201-ao-body": "7: 201 {AO only} with body {properties.provisioningState: Succeeded}",
    "202-ao-body": "8: 202 {AO only} with body {properties.provisioningState: Succeeded}",
    "location-only": "9: 202 {LOC only} with a provisioningState body; LOC 202 while running, 200 + resource",
    "ao-unreachable": "10: AO (and LOC) on 127.0.0.2, where nothing listens",
    "location-unreachable": "11: 202 {LOC only} on 127.0.0.2",
    "location-bad-json": "12: 202 {LOC only}; when done LOC 200 with body '{'",
    "location-bad-json-2": "13: 202 {LOC only}; when done LOC 200 with body '{'\"}'",
    "location-203": "14: 202 {LOC only}; when done LOC answers 203",
    "location-201": "25: 201 {LOC only}; LOC polls must carry the action's x-ms-client-request-id (else 400); 200 + resource when done",
    "retry-after-10": "26: Retry-After: 10 on the 202 and every status answer",
    "retry-after-httpdate": "27: Retry-After as an HTTP-date one hour ahead",
    "relative-urls": "28: AO and LOC are relative paths (/Subscriptions/...)",
    "ao-running": "29: AO says 'Running' (not InProgress) while running, Retry-After on each answer",
    "ao-failed": "30: AO ends Failed with error {code: X, message: m} even though the job succeeded",
    "ao-canceled": "31: AO ends Canceled",
    "ao-empty-body": "32: AO answers 200 with an empty body",
    "ao-no-status": "32: AO answers 200 {\"percentComplete\": 50} (no status)",
    "ao-lowercase": "33: AO status in lower case ('inprogress', 'succeeded')",
    "location-chain": "34: 202 {LOC, Retry-After: 60}; LOC 202 {LOC': ...?hop=2, Retry-After: 10}; LOC' 204 when done",
    "ao-500x3": "35: the first three AO GETs answer 500, then normal",
    "ao-500x4": "35: the first four AO GETs answer 500",
    "ao-429": "35: the first AO GET answers 429 with Retry-After: 1",
    "ao-404": "35: every AO GET answers 404",
    "no-headers": "36: 202 with neither AO nor LOC",
}

AO_ONLY = ("ao-resource-location", "201-ao-body", "202-ao-body")
LOC_ONLY = ("location-only", "location-unreachable", "location-bad-json", "location-bad-json-2",
            "location-203", "location-201", "location-chain")
PROVISIONING_BODY = {"properties": {"provisioningState": "Succeeded"}}

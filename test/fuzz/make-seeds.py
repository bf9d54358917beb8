#!/usr/bin/env python3
"""make-seeds.py: write the seed corpus of test/fuzz (corpus/<target>/seed-*)
from the recorded Azure examples (/work/shared/asr-examples and
asr-recordings, when present) and hand-written shapes of ARM, ASR, Entra ID
and IMDS answers.  Run once; the seeds are committed."""
import glob
import hashlib
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
examples = sys.argv[1] if len(sys.argv) > 1 else '/work/shared/asr-examples'
recordings = sys.argv[2] if len(sys.argv) > 2 else '/work/shared/asr-recordings'
seeds = {t: [] for t in ('job', 'operation', 'error', 'headers', 'armid', 'url', 'token',
                         'item', 'points', 'list')}

ITEM = ('/subscriptions/c183865e-6077-46f2-a3b1-deb0f4f4650a/resourceGroups/rg1/providers/'
        'Microsoft.RecoveryServices/vaults/vault1/replicationFabrics/asr-a2a-default-eastus/'
        'replicationProtectionContainers/asr-a2a-default-eastus-container/'
        'replicationProtectedItems/f8491e4f-817a-40dd-a90c-af773978c75b')
JOB_URL = ('https://management.azure.com/Subscriptions/c183865e-6077-46f2-a3b1-deb0f4f4650a/'
           'resourceGroups/rg1/providers/Microsoft.RecoveryServices/vaults/vault1/'
           'replicationJobs/32ea4b9e-de62-49a1-b062-7864d5c3b897?api-version=2022-10-01')
AO_URL = JOB_URL.replace('replicationJobs/', 'replicationOperationResults/')


def add(target, data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    seeds[target].append(data)


for path in sorted(glob.glob(os.path.join(examples, '*.json'))):
    doc = json.load(open(path))
    for status, resp in (doc.get('responses') or {}).items():
        body = resp.get('body')
        hdrs = resp.get('headers') or {}
        if body is not None:
            if 'Jobs' in os.path.basename(path) and isinstance(body, dict):
                if 'value' in body:
                    for j in body['value'][:3]:
                        add('job', j)
                else:
                    add('job', body)
            base = os.path.basename(path)
            if base.startswith('ReplicationProtectedItems_') and isinstance(body, dict) \
                    and 'properties' in body:
                add('item', body)
            if base.startswith('ReplicationProtectedItems_List') and isinstance(body, dict):
                add('list', body)
                for it in body.get('value', [])[:2]:
                    add('item', it)
            if 'RecoveryPoints_List' in base and isinstance(body, dict):
                add('points', body)
            if base.startswith('ReplicationJobs_List') and isinstance(body, dict):
                add('list', body)
            if 'OperationResults' in os.path.basename(path):
                add('operation', body)
            if isinstance(body, dict) and 'id' in body:
                add('armid', body['id'] + '\n' + body['id'].upper())
        if hdrs:
            lines = ''.join('%s: %s\n' % (k, v) for k, v in hdrs.items())
            add('headers', bytes([3]) + lines.encode())
            for k, v in hdrs.items():
                if k.lower() in ('location', 'azure-asyncoperation'):
                    add('url', v + '\n')

# The worker targets (fuzz_worker.c): its vault, items item1..item6 and
# their running jobs, as fuzz_setup.sql makes them.
CONTAINER = ('/subscriptions/c183865e-6077-46f2-a3b1-deb0f4f4650a/resourceGroups/rg1/providers/'
             'Microsoft.RecoveryServices/vaults/vault1/replicationFabrics/asr-a2a-default-eastus/'
             'replicationProtectionContainers/asr-a2a-default-eastus-container')
VAULT = CONTAINER.split('/replicationFabrics/')[0]
DISK = ('/subscriptions/c183865e-6077-46f2-a3b1-deb0f4f4650a/resourceGroups/rg1/providers/'
        'Microsoft.Compute/disks/vm%d-osdisk')
NEXT = 'https://management.azure.com' + VAULT + '/replicationJobs?api-version=2022-10-01&$skiptoken=abc'


def item(i, state='Protected', ops=('UnplannedFailover', 'TestFailover', 'ChangePit'),
         scenario=None, **extra):
    props = {'friendlyName': 'vm%d' % i, 'protectionState': state,
             'protectionStateDescription': state, 'activeLocation': 'Primary',
             'replicationHealth': 'Normal', 'testFailoverState': 'None',
             'allowedOperations': list(ops),
             'currentScenario': scenario or {'scenarioName': 'None', 'jobId': 'None'},
             'failoverRecoveryPointId': CONTAINER + '/replicationProtectedItems/item%d/recoveryPoints/p1' % i,
             'lastSuccessfulFailoverTime': '2024-01-01T00:00:00Z',
             'providerSpecificDetails': {'instanceType': 'A2A', 'primaryFabricLocation': 'eastus',
                                         'recoveryFabricLocation': 'westus', 'rpoInSeconds': 42,
                                         'fabricObjectId': '/subscriptions/x/resourceGroups/src/providers/'
                                                           'Microsoft.Compute/virtualMachines/vm%d' % i,
                                         'protectedManagedDisks': [{'diskId': DISK % i}]}}
    props.update(extra)
    return {'id': CONTAINER + '/replicationProtectedItems/item%d' % i, 'name': 'item%d' % i,
            'type': 'Microsoft.RecoveryServices/vaults/replicationFabrics/'
                    'replicationProtectionContainers/replicationProtectedItems',
            'properties': props}


def point(i, n, t='2024-01-01T00:0%d:00Z', kind='CrashConsistent', disks=None):
    return {'name': 'p%d' % n, 'id': CONTAINER + '/replicationProtectedItems/item%d/recoveryPoints/p%d' % (i, n),
            'properties': {'recoveryPointTime': t % n if '%' in t else t, 'recoveryPointType': kind,
                           'providerSpecificDetails': {'instanceType': 'A2A',
                                                       'disks': disks if disks is not None else [DISK % i]}}}


def job(i, state='InProgress', crid=None, **props):
    p = {'state': state, 'scenarioName': 'UnplannedFailover', 'tasks': [],
         'activityId': '%s ActivityId: 2b4a' % (crid or 'f00d'), 'allowedActions': ['Cancel']}
    p.update(props)
    return {'id': VAULT + '/replicationJobs/%08d-0000-4000-8000-00000000000%d' % (i, i),
            'name': '%08d-0000-4000-8000-00000000000%d' % (i, i), 'properties': p}


add('item', item(1))
add('item', item(2, ops=(), scenario={'scenarioName': 'UnplannedFailover',
                                      'jobId': VAULT + '/replicationJobs/job-x'}))
add('item', item(3, state='UnplannedFailoverCommitPendingStatesBegin', ops=('Commit', 'ChangePit')))
add('item', item(4, ops=('SwitchProtection',), activeLocation='Recovery'))
add('item', item(1, providerSpecificDetails={'rpoInSeconds': '12abc', 'protectedManagedDisks': 'x'}))
add('item', item(1, lastSuccessfulFailoverTime='yesterday'))
add('item', {'id': CONTAINER.upper() + '/replicationProtectedItems/ITEM1', 'name': 'ITEM1',
             'properties': {'allowedOperations': [None, 1, 'UnplannedFailover']}})
add('item', {'id': '/subscriptions/x', 'properties': {}})
add('item', '{"properties": {"allowedOperations": "UnplannedFailover", "currentScenario": []}}')

add('points', {'value': [point(1, 1), point(1, 2, kind='ApplicationConsistent'),
                         point(1, 3, disks=[])]})
add('points', {'value': [point(1, 4, disks=[DISK % 1, (DISK % 1).upper(), DISK % 2])],
               'nextLink': 'https://management.azure.com' + CONTAINER +
                           '/replicationProtectedItems/item1/recoveryPoints?api-version=2022-10-01&$skiptoken=1'})
add('points', {'value': [point(1, 5, t='not a time')], 'nextLink': 'https://evil.example/x'})
add('points', {'value': [{'name': None, 'properties': {'recoveryPointTime': 5}}, 7, []]})
add('points', '{"value": {}}')

add('list', {'value': [job(1, crid='00000001-aaaa-4bbb-8ccc-dddddddddddd')]})
add('list', {'value': [job(2, 'Succeeded'), job(3, 'Failed', errors=[{'serviceErrorDetails': {
    'code': '1', 'message': 'm'}}]), job(4, 'Suspended'), job(5, 'Cancelled'),
    job(6, 'InProgress', customDetails={'newReplicationProtectedItemId':
                                        CONTAINER + '/replicationProtectedItems/item6b'})],
    'nextLink': NEXT})
add('list', {'value': [item(1), item(2), item(5, state='Unprotected', ops=())],
             'nextLink': 'https://management.azure.com' + VAULT +
                         '/replicationProtectedItems?api-version=2022-10-01&$skiptoken=2'})
add('list', {'value': [item(1, providerSpecificDetails={'rpoInSeconds': -1}), {'id': 7}, None]})
add('list', {'value': [], 'nextLink': 'http://management.azure.com/next'})

for path in sorted(glob.glob(os.path.join(recordings, '*.json')))[:3]:
    try:
        doc = json.load(open(path, encoding='utf-8-sig'))
    except (ValueError, UnicodeDecodeError):
        continue
    n = 0
    per = {'item': 0, 'points': 0, 'list': 0}
    for e in doc.get('Entries', []):
        body = e.get('ResponseBody') or ''
        uri = e.get('RequestUri', '').split('?')[0]
        if not body.startswith('{'):
            continue
        if 'replicationJobs/' in uri and n < 4:
            add('job', body)
            n += 1
        kind = ('points' if uri.endswith('/recoveryPoints') else
                'list' if uri.endswith('/replicationJobs') or uri.endswith('/replicationProtectedItems') else
                'item' if '/replicationProtectedItems/' in uri and uri.count('/') % 2 == 0 else None)
        if kind and per[kind] < 3:
            add(kind, body)
            per[kind] += 1

add('job', {'name': 'j1', 'properties': {
    'state': 'InProgress', 'activityId': 'abc ActivityId: def', 'scenarioName': 'UnplannedFailover',
    'allowedActions': ['Cancel'],
    'tasks': [{'state': 'Succeeded', 'friendlyName': 'Prerequisites check'},
              {'state': 'InProgress', 'friendlyName': 'Start the replica VM',
               'groupTaskCustomDetails': {'childTasks': [{'state': 'NotStarted'}]}}],
    'errors': [{'serviceErrorDetails': {'code': '70094', 'message': 'Failover failed.',
                                        'possibleCauses': 'x', 'recommendedAction': 'y'},
                'providerErrorDetails': {'errorCode': 1, 'errorMessage': 'z'}}],
    'customDetails': {'instanceType': 'FailoverJobDetails',
                      'protectedItemDetails': [{'recoveryPointId': ITEM + '/recoveryPoints/p1'}]},
    'targetObjectId': 'x'}})
add('job', {'name': 'j2', 'properties': {'state': 'Suspended', 'allowedActions': ['Resume', 'Restart']}})
add('job', '{"properties": {"state": "Succeeded", "tasks": [], "customDetails": '
    '{"newReplicationProtectedItemId": "%s"}}}' % ITEM)
add('job', '{"value": [')

for s in ('Succeeded', 'InProgress', 'Failed', 'Canceled', 'Cancelled'):
    add('operation', {'name': 'op', 'status': s, 'startTime': '2024-01-01T00:00:00Z'})
add('operation', {'status': 'Failed', 'error': {'code': 'InternalError', 'message': 'boom',
                                                'details': [{'code': 'x', 'message': 'y'}]}})

add('error', {'error': {'code': 'SubscriptionRequestsThrottled', 'message': 'Number of requests exceeded.'}})
add('error', {'error': {'code': 'BadRequest', 'message': 'x', 'details': [
    {'code': '28031', 'message': 'Recovery point not found.', 'possibleCauses': 'The point expired.',
     'recommendedAction': 'Pick another point.'}]}})
add('error', {'Code': 'Conflict', 'Message': 'Another operation is in progress.'})
add('error', {'error': 'invalid_client', 'error_description': 'AADSTS7000215: Invalid client secret.',
              'error_codes': [7000215]})
add('error', '<html><body>Bad gateway</body></html>')

for st in (3, 9, 10, 12):
    add('headers', bytes([st]) + ('Location: %s\nAzure-AsyncOperation: %s\nRetry-After: 30\n'
                                  'x-ms-ratelimit-remaining-subscription-reads: 11999\n'
                                  'x-ms-ratelimit-remaining-subscription-writes: 1199\n'
                                  'x-ms-request-id: 1234\n' % (JOB_URL, AO_URL)).encode())
add('headers', bytes([9]) + b'Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\n')
add('headers', bytes([9]) + b'retry-after: 99999999999999999999\n')
add('headers', bytes([12]) + b'Retry-After: -5\n')

add('armid', ITEM + '\n' + ITEM.lower())
add('armid', '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v\n')
add('armid', '/subscriptions//resourceGroups//providers\n/')

for u in (JOB_URL, AO_URL, 'https://management.azure.com:443/x', 'https://user:pw@management.azure.com/x',
          'http://management.azure.com/x', 'https://127.0.0.1:8443/x?t=1&c=abc&s=def&h=ghi',
          'https://evil.example/x', '//management.azure.com/x', 'https://[::1]:8443/'):
    add('url', u + '\n')
add('url', 'https://management.azure.com/x\nhttps://management.azure.com:8443')

add('token', b'\x00' + json.dumps({'token_type': 'Bearer', 'expires_in': 3599, 'ext_expires_in': 3599,
                                    'access_token': 'eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2ln'}).encode())
add('token', b'\x01' + json.dumps({'access_token': 'eyJ0eXAi.eyJ.c2ln', 'expires_on': '1999999999',
                                    'expires_in': '86399', 'refresh_in': '43199', 'resource':
                                    'https://management.azure.com/', 'token_type': 'Bearer'}).encode())
add('token', b'\x02' + json.dumps({'error': 'invalid_client', 'error_description':
                                    'AADSTS7000215: Invalid client secret provided.',
                                    'error_codes': [7000215], 'trace_id': 't', 'correlation_id': 'c'}).encode())
add('token', b'\x07' + json.dumps({'error': 'identity_not_found', 'error_description':
                                    'Identity not found'}).encode())
add('token', b'\x00{"access_token": "x", "token_type": "pop", "expires_in": "10"}')

for target, items in seeds.items():
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for data in items:
        name = 'seed-' + hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)
    print(target, len(items))

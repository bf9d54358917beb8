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
seeds = {t: [] for t in ('job', 'operation', 'error', 'headers', 'armid', 'url', 'token')}

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

for path in sorted(glob.glob(os.path.join(recordings, '*.json')))[:3]:
    try:
        doc = json.load(open(path, encoding='utf-8-sig'))
    except (ValueError, UnicodeDecodeError):
        continue
    n = 0
    for e in doc.get('Entries', []):
        body = e.get('ResponseBody') or ''
        if 'replicationJobs/' in e.get('RequestUri', '') and body.startswith('{') and n < 4:
            add('job', body)
            n += 1

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

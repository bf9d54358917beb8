# asr_wait wakes up when another session commits the job's end (a
# condition variable, not a sleep loop), with a NOTICE for each change of
# state, progress or task; a rollback wakes nobody.  On a hot standby every
# action function is refused with a read-only error.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AsrTest;

my $node = asr_node('sqlapi', allows_streaming => 1);
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
# A paused vault: the worker leaves its jobs alone, the test moves them.
$node->safe_psql('postgres', q{
CREATE SERVER az FOREIGN DATA WRAPPER asr_azure OPTIONS (tenant_id '72f988bf-86f1-41af-91ab-2d7cd011db47');
INSERT INTO asr_vaults (name, server, subscription_id, resource_group, vault_name, paused)
  VALUES ('east', 'az', '7c943c1b-5122-4097-90c8-861411bdd574', 'dr-rg', 'drvault-east', true);
INSERT INTO asr_items (vault_id, name, arm_id, protection_state, active_location,
                       allowed_operations, primary_region, recovery_region)
  SELECT vault_id, 'vm1',
    '/Subscriptions/7c943c1b-5122-4097-90c8-861411bdd574/resourceGroups/dr-rg/providers/Microsoft.RecoveryServices/vaults/drvault-east/replicationFabrics/asr-a2a-default-uksouth/replicationProtectionContainers/asr-a2a-default-uksouth-container/replicationProtectedItems/dm0xLXRva2Vu',
    'Protected', 'Primary', '{UnplannedFailover,TestFailover}', 'uksouth', 'ukwest'
    FROM asr_vaults;
});
my $job = $node->safe_psql('postgres', "SELECT asr_failover('vm1')");
is($job, '1', 'a failover job is queued');

# A second session waits; asr_wait's own fallback sleep is 30 s, so an end
# within a few seconds of the commit can only come from the wake-up.
my ($stdin, $stdout, $stderr) = ('', '', '');
my $timer = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
my $waiter = IPC::Run::start(
	[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-f', '-' ],
	'<', \$stdin, '>', \$stdout, '2>', \$stderr, $timer);
$stdin .= "SELECT asr_wait($job, '120 s');\n";
$waiter->pump_nb;
ok(wait_for_query($node,
		"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT asr_wait%' AND wait_event = 'Extension'", '1'),
	'asr_wait sleeps on its condition variable');

$node->safe_psql('postgres', qq{
SELECT asr_job_transition($job, 'submitting');
SELECT asr_job_transition($job, 'running', 'accepted', 40,
  '[{"friendlyName": "Prerequisites check for failover", "state": "Succeeded"},
    {"friendlyName": "Start failover", "state": "InProgress"}]');
});
# A change that is rolled back wakes nobody and is never reported.
$node->safe_psql('postgres', qq{
BEGIN;
SELECT asr_job_transition($job, 'running', NULL, 90);
ROLLBACK;
});
$node->safe_psql('postgres', qq{SELECT asr_job_transition($job, 'running', NULL, 75,
  '[{"friendlyName": "Prerequisites check for failover", "state": "Succeeded"},
    {"friendlyName": "Start the replica virtual machine", "state": "InProgress"}]')});
my $t0 = time();
$node->safe_psql('postgres', "SELECT asr_job_transition($job, 'succeeded', 'failover done')");
$stdin .= "\\q\n";
$waiter->finish;
my $elapsed = time() - $t0;
chomp(my $final = $stdout);
is($final, 'succeeded', 'asr_wait returns the final state');
cmp_ok($elapsed, '<', 10, sprintf('asr_wait returned %.1f s after the commit', $elapsed));
my @notices = ($stderr =~ /NOTICE:\s+(.*)/g);
like($notices[0], qr/job 1 \(failover of "vm1"\): queued, 0%/, 'first NOTICE: queued');
ok((grep { /running, 40%, task "Start failover"/ } @notices), 'NOTICE for running, 40 %, with the current task');
ok((grep { /running, 75%, task "Start the replica virtual machine"/ } @notices), 'NOTICE for the next task');
ok(!(grep { /90%/ } @notices), 'no NOTICE for a rolled-back change');
like($notices[-1], qr/succeeded, 100%$/, 'last NOTICE: succeeded');

# Hot standby: every action is a read-only error, and nothing is recorded.
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('sqlapi_standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
for my $call ("asr_failover('vm1')", "asr_test_failover('vm1')", "asr_test_failover_cleanup('vm1')",
	"asr_change_recovery_point('vm1', 'latest_processed')", "asr_commit('vm1')",
	"asr_reprotect('vm1')", "asr_cancel(1)", "asr_restart(1)", "asr_resume(1)",
	"asr_add_vault('w', 'az', gen_random_uuid(), 'rg', 'vault-w')", "asr_sync('east', '1 s')")
{
	my ($ret, $out, $err) = $standby->psql('postgres', "SELECT $call",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:\s+25006: cannot execute asr_\w+\(\) during recovery/,
		"$call on a standby: read-only error");
}
is($standby->safe_psql('postgres', 'SELECT count(*) FROM asr_jobs'), '1', 'the standby recorded nothing');
is($standby->safe_psql('postgres', "SELECT asr_wait(1, '1 s')"), 'succeeded',
	'asr_wait reads on a standby');

$standby->stop('fast');

# pg_dump, then a restore into a freshly created database (the worker's
# database, the only one the extension installs in) keeps vaults, items,
# jobs and the audit trail.
my $rows = q{SELECT (SELECT string_agg(j::text, ',' ORDER BY job_id) FROM asr_jobs j)
  || (SELECT string_agg(e::text, ',' ORDER BY event_id) FROM asr_job_events e)
  || (SELECT string_agg(v::text, ',' ORDER BY vault_id) FROM asr_vaults v)
  || (SELECT string_agg(i::text, ',' ORDER BY item_id) FROM asr_items i)};
my $before = $node->safe_psql('postgres', $rows);
my $dump = $node->basedir . '/asr.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ], 'pg_dump');
$node->safe_psql('template1', 'DROP DATABASE postgres WITH (FORCE)');
$node->safe_psql('template1', 'CREATE DATABASE postgres');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('postgres'), $dump ],
	'pg_restore into a fresh database');
is($node->safe_psql('postgres', $rows), $before, 'vaults, items, jobs and events are restored');
is($node->safe_psql('postgres', "SELECT asr_test_failover('vm1', 'latest')"), '2',
	'the job sequence goes on after the restore');

$node->stop('fast');
done_testing();
